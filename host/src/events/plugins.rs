//! `PREFIX:plugins`: what the plugins of a process are doing. A
//! `plugin_status` per running kind every two seconds (name, version, call
//! counters, latency), one event per install, refusal or rollback, the
//! reports of shadow runs, and what each instance of a fleet did with a
//! fleet command.

use serde::{Deserialize, Serialize};

use crate::contract::PluginKind;

/// Any event on `PREFIX:plugins`, told apart by its `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PluginEvent {
    /// `plugin_status`.
    PluginStatus(PluginStatus),
    /// `plugin_installed`.
    PluginInstalled(PluginInstalled),
    /// `plugin_refused`.
    PluginRefused(PluginRefused),
    /// `plugin_rolled_back`.
    PluginRolledBack(PluginRolledBack),
    /// `plugin_abandoned`.
    PluginAbandoned(PluginAbandoned),
    /// `plugin_shadow`.
    PluginShadow(PluginShadow),
    /// `fleet_applied`.
    FleetApplied(FleetApplied),
}

/// The active version of one kind and its call statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginStatus {
    /// Which world.
    pub kind: PluginKind,
    /// Self-reported name.
    pub name: String,
    /// Self-reported version.
    pub version: String,
    /// Contract version it was built against.
    pub wit_version: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// When it went live (RFC 3339, microseconds).
    pub loaded_at: String,
    /// Where it came from: `embedded`, a file path, `admin upload`.
    pub source: String,
    /// Calls since it went live.
    pub calls: u64,
    /// Failed calls (trap, deadline, memory limit).
    pub errors: u64,
    /// Calls stopped at the deadline.
    pub deadline_errors: u64,
    /// Median call latency, ms (`null` before the first call).
    pub p50_ms: Option<f64>,
    /// 99th percentile call latency, ms (`null` before the first call).
    pub p99_ms: Option<f64>,
    /// When the event was made (milliseconds, `Z`).
    pub timestamp: String,
}

/// A new version went live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInstalled {
    /// Which world.
    pub kind: PluginKind,
    /// Self-reported name.
    pub name: String,
    /// The version now live.
    pub version: String,
    /// Its contract version.
    pub wit_version: String,
    /// The version it replaced.
    pub previous_version: Option<String>,
    /// How long the hot path paused for the switch, µs.
    pub pause_us: u64,
    /// Health plugins: `carried over`, or why the state started fresh.
    pub state: Option<String>,
    /// Where it came from.
    pub source: String,
    /// One line for people.
    pub message: String,
    /// When (milliseconds, `Z`).
    pub timestamp: String,
}

/// An upload or file that was refused; the running version keeps serving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRefused {
    /// Which world.
    pub kind: PluginKind,
    /// Where it came from.
    pub source: String,
    /// Why it was refused.
    pub reason: String,
    /// One line for people.
    pub message: String,
    /// When (milliseconds, `Z`).
    pub timestamp: String,
}

/// The active version was replaced by the one before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRolledBack {
    /// Which world.
    pub kind: PluginKind,
    /// The version that was active.
    pub from_version: Option<String>,
    /// The version now live.
    pub version: String,
    /// Whether the host did it by itself (a new version kept failing).
    pub automatic: bool,
    /// Why.
    pub reason: Option<String>,
    /// Health plugins: `carried over`, or why the state started fresh.
    pub state: Option<String>,
    /// One line for people.
    pub message: String,
    /// When (milliseconds, `Z`).
    pub timestamp: String,
}

/// A plugin call did not return in time: its thread was abandoned and a
/// fresh thread with a fresh instance of the same version took over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginAbandoned {
    /// Which world.
    pub kind: PluginKind,
    /// `name@version` of the plugin whose call was stuck.
    pub plugin: String,
    /// How long the call had run when it was abandoned, ms.
    pub stuck_ms: u64,
    /// Abandoned threads of this kind still stuck (the host exits when
    /// more than 3 are).
    pub stuck_now: u64,
    /// One line for people.
    pub message: String,
    /// When (milliseconds, `Z`).
    pub timestamp: String,
}

/// A shadow run's report: when it starts, every few seconds while it runs,
/// and once when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginShadow {
    /// Which world.
    pub kind: PluginKind,
    /// The report (see `GET /admin/plugins/{kind}/shadow`).
    pub report: serde_json::Value,
    /// One line for people.
    pub message: String,
    /// When (milliseconds, `Z`).
    pub timestamp: String,
}

/// What one instance of a fleet did with a signed fleet command: applied
/// it (the version is live, or the shadow runs or stopped) or refused it
/// (it keeps what it runs and will not take that generation again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetApplied {
    /// Which world.
    pub kind: PluginKind,
    /// `install`, `rollback`, `promote`, `shadow` or `shadow_stop`.
    pub action: String,
    /// The command's generation (per kind, only ever higher).
    pub generation: u64,
    /// SHA-256 of the component the command names (empty for `shadow_stop`).
    pub sha256: String,
    /// `applied` or `refused`.
    pub outcome: String,
    /// Why it was refused (`null` when applied).
    pub reason: Option<String>,
    /// The instance (a UUID v4 made at its start).
    pub instance_id: String,
    /// Its role: `run`, `ingest`, `process` or `dashboard`.
    pub role: String,
    /// Its host name.
    pub host: String,
    /// SHA-256 of the version of this kind live on the instance now.
    pub active_sha256: Option<String>,
    /// One line for people.
    pub message: String,
    /// When (milliseconds, `Z`).
    pub timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_field_tells_events_apart() {
        let refused = PluginEvent::PluginRefused(PluginRefused {
            kind: PluginKind::Health,
            source: "admin upload".into(),
            reason: "not a component".into(),
            message: "m".into(),
            timestamp: "t".into(),
        });
        let json = serde_json::to_value(&refused).unwrap();
        assert_eq!(json["type"], "plugin_refused");
        assert_eq!(json["kind"], "health");
        let back: PluginEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, refused);
    }
}
