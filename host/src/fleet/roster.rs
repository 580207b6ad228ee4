//! Who runs what: each instance's [`Heartbeat`] (written every
//! [`BEAT_EVERY`] to `PREFIX:fleet:instances`) and the [`Roster`] made of
//! them against the desired state, for `tickstock plugins list`, the admin
//! API and the dashboard. An instance silent for longer than
//! [`SILENT_AFTER`] drops out of the roster.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::command::Command;
use crate::plugins::PluginKind;

/// How often an instance writes its heartbeat.
pub const BEAT_EVERY: Duration = Duration::from_secs(2);
/// How long an instance may be silent before it drops out of the roster.
pub const SILENT_AFTER: Duration = Duration::from_secs(10);
/// How long a silent instance's heartbeat is kept before it is removed.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The version of one kind an instance runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Running {
    /// Self-reported name.
    pub name: String,
    /// Self-reported version.
    pub version: String,
    /// Hex SHA-256 of the component.
    pub sha256: String,
}

/// A command an instance refused; it will not take that generation again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedCommand {
    /// The kind.
    pub kind: PluginKind,
    /// The command's generation.
    pub generation: u64,
    /// Its component.
    pub sha256: String,
    /// Why.
    pub reason: String,
}

/// What one instance says of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// A UUID v4 made when the process started.
    pub instance_id: String,
    /// `run`, `ingest`, `process` or `dashboard`.
    pub role: String,
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// When it wrote this (Unix ms).
    pub seen_ms: i64,
    /// Whether it holds the fleet key (without it, it ignores the fleet).
    pub fleet_key: bool,
    /// The live version of each kind it runs.
    pub active: BTreeMap<PluginKind, Running>,
    /// The last generation it took, per kind.
    pub generations: BTreeMap<PluginKind, u64>,
    /// Commands it did not take, counted by why (`bad_signature`,
    /// `unsigned`, `malformed`, `replayed`, `hash_mismatch`,
    /// `blob_missing`).
    pub rejected: BTreeMap<String, u64>,
    /// The latest commands it refused (validation or its own automatic
    /// rollback), newest last.
    pub refused: Vec<RefusedCommand>,
}

/// An instance as the roster shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// What it said of itself.
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    /// How long ago it last wrote, in ms.
    pub silent_ms: i64,
    /// Per kind it runs: whether its live version is the desired one (a
    /// kind with no desired state yet always matches).
    pub matches: BTreeMap<PluginKind, bool>,
}

/// The desired state and the live instances.
#[derive(Debug, Clone, Serialize)]
pub struct Roster {
    /// The desired state per kind (the verified record), if one was issued.
    pub desired: BTreeMap<PluginKind, Command>,
    /// Live instances, by role then id.
    pub instances: Vec<Member>,
    /// Whether every live instance runs the desired versions.
    pub converged: bool,
}

impl Roster {
    /// The roster of `heartbeats` (as stored) at `now_ms`, and the ids of
    /// heartbeats old enough to be removed. Unreadable entries are skipped.
    pub fn of(
        desired: BTreeMap<PluginKind, Command>,
        heartbeats: &[(String, String)],
        now_ms: i64,
    ) -> (Roster, Vec<String>) {
        let mut instances = Vec::new();
        let mut stale = Vec::new();
        for (id, text) in heartbeats {
            let Ok(heartbeat) = serde_json::from_str::<Heartbeat>(text) else {
                stale.push(id.clone());
                continue;
            };
            let silent_ms = now_ms - heartbeat.seen_ms;
            if silent_ms > FORGET_AFTER.as_millis() as i64 {
                stale.push(id.clone());
            }
            if silent_ms > SILENT_AFTER.as_millis() as i64 {
                continue;
            }
            let matches = heartbeat
                .active
                .iter()
                .map(|(kind, running)| {
                    let ok = desired.get(kind).is_none_or(|d| d.sha256 == running.sha256);
                    (*kind, ok)
                })
                .collect();
            instances.push(Member {
                heartbeat,
                silent_ms,
                matches,
            });
        }
        instances.sort_by(|a, b| {
            (&a.heartbeat.role, &a.heartbeat.instance_id)
                .cmp(&(&b.heartbeat.role, &b.heartbeat.instance_id))
        });
        let converged = instances.iter().all(|m| m.matches.values().all(|ok| *ok));
        (
            Roster {
                desired,
                instances,
                converged,
            },
            stale,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::command::Action;

    fn beat(id: &str, seen_ms: i64, sha: &str) -> (String, String) {
        let heartbeat = Heartbeat {
            instance_id: id.into(),
            role: "ingest".into(),
            host: "h".into(),
            pid: 1,
            seen_ms,
            fleet_key: true,
            active: BTreeMap::from([(
                PluginKind::Normalizer,
                Running {
                    name: "n".into(),
                    version: "1".into(),
                    sha256: sha.into(),
                },
            )]),
            generations: BTreeMap::new(),
            rejected: BTreeMap::new(),
            refused: Vec::new(),
        };
        (id.into(), serde_json::to_string(&heartbeat).unwrap())
    }

    #[test]
    fn silent_instances_drop_out_and_mismatches_show() {
        let desired = BTreeMap::from([(
            PluginKind::Normalizer,
            Command {
                kind: PluginKind::Normalizer,
                action: Action::Install,
                sha256: "new".into(),
                generation: 1,
                issued_at: String::new(),
                issued_by: String::new(),
                for_secs: None,
            },
        )]);
        let now = 1_000_000_000;
        let beats = [
            beat("a", now - 500, "new"),
            beat("b", now - 1_000, "old"),
            beat("c", now - 60_000, "new"),
            beat("d", now - 3_600_000, "new"),
            ("e".into(), "not json".into()),
        ];
        let (roster, stale) = Roster::of(desired, &beats, now);
        let ids: Vec<_> = roster
            .instances
            .iter()
            .map(|m| m.heartbeat.instance_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(roster.instances[0].matches[&PluginKind::Normalizer]);
        assert!(!roster.instances[1].matches[&PluginKind::Normalizer]);
        assert!(!roster.converged);
        assert_eq!(stale, ["d", "e"]);
    }
}
