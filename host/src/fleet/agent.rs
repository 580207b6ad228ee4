//! [`Agent`]: one instance's side of the fleet. It takes signed commands
//! from the control channel (and, at start-up and every
//! [`RECONCILE_EVERY`], the desired-state record, so that a command missed
//! while Redis was away is still taken), hands each to this process's
//! [`PluginManager`], and reports: a `fleet_applied` event per command on
//! `PREFIX:plugins`, and a heartbeat every [`BEAT_EVERY`].
//!
//! A command is taken only when its signature is the fleet key's and its
//! generation is higher than the last this instance took of that kind;
//! the component's bytes must hash to the command's SHA-256, and the
//! manager validates them again as for any install. Whatever the outcome,
//! the generation counts as taken: a version this instance refused (or
//! rolled back by itself) is not tried again until a newer command comes.
//! Commands run one at a time, in the order they arrive.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::command::{Action, Command, FleetKey, Rejection};
use super::roster::{Heartbeat, RefusedCommand, Running, BEAT_EVERY};
use super::store::FleetStore;
use crate::bus::Bus;
use crate::events::{health_time, FleetApplied, PluginEvent};
use crate::manager::{InstallError, PluginManager};
use crate::plugins::PluginKind;

/// How often the desired state is read again.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// How often the agent looks whether a desired version it made live is
/// still live (an automatic rollback undoes it).
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Refused commands kept for the heartbeat.
const REFUSED_KEPT: usize = 16;

/// Who an instance is, as its heartbeat and its events say.
#[derive(Debug, Clone)]
pub struct Identity {
    /// A UUID v4 made at start-up.
    pub instance_id: String,
    /// `run`, `ingest`, `process` or `dashboard`.
    pub role: String,
    /// The host name.
    pub host: String,
}

impl Identity {
    /// A new identity for a process of `role` on this host.
    pub fn new(role: &str) -> Identity {
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        Identity {
            instance_id: uuid::Uuid::new_v4().to_string(),
            role: role.to_string(),
            host,
        }
    }
}

/// What the agent has taken and refused.
#[derive(Default)]
struct Taken {
    /// The last command taken, per kind.
    last: BTreeMap<PluginKind, Command>,
    /// Commands not taken, by [`Rejection::label`].
    rejected: BTreeMap<String, u64>,
    /// Commands refused, newest last.
    refused: VecDeque<RefusedCommand>,
    /// A desired-state record that was rejected, per kind.
    bad_desired: BTreeMap<PluginKind, String>,
    /// The desired version made live here, per kind, until it is no longer
    /// live (then reported once as refused).
    live: BTreeMap<PluginKind, Command>,
}

/// One instance's side of the fleet.
pub struct Agent {
    identity: Identity,
    /// `None`: no fleet key, so the control channel is ignored.
    key: Option<FleetKey>,
    store: Arc<FleetStore>,
    bus: Bus,
    manager: Arc<PluginManager>,
    taken: Mutex<Taken>,
}

/// Where a command came from (for logs).
#[derive(Clone, Copy)]
enum Origin {
    Control,
    Desired,
}

impl Agent {
    /// An agent for the plugins `manager` runs. Without a key it only
    /// writes heartbeats (saying it holds no key).
    pub fn new(
        identity: Identity,
        key: Option<FleetKey>,
        store: Arc<FleetStore>,
        bus: Bus,
        manager: Arc<PluginManager>,
    ) -> Arc<Agent> {
        Arc::new(Agent {
            identity,
            key,
            store,
            bus,
            manager,
            taken: Mutex::default(),
        })
    }

    /// This instance's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Starts the heartbeat and, with a key, the command loop; both end on
    /// `cancel` (the heartbeat is removed then).
    pub fn start(self: &Arc<Self>, cancel: CancellationToken) {
        tokio::spawn(self.clone().beat(cancel.clone()));
        if self.key.is_some() {
            tokio::spawn(self.clone().follow(cancel));
        } else {
            tracing::info!(
                role = %self.identity.role,
                "no fleet key (TICKSTOCK_FLEET_KEY): this instance ignores the control channel"
            );
        }
    }

    /// Takes commands one at a time: the desired state first, then what
    /// the control channel brings, reading the desired state again now and
    /// then.
    async fn follow(self: Arc<Self>, cancel: CancellationToken) {
        // Subscribed before the first read of the desired state, so a
        // command issued in between is not missed.
        let mut control = self.bus.subscribe(vec![self.bus.channels().control()], 64);
        let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
        let mut watch = tokio::time::interval(WATCH_EVERY);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = watch.tick() => self.notice_replaced(),
                message = control.recv() => match message {
                    Some(m) => {
                        self.take(&m.payload, Origin::Control).await;
                    }
                    None => return,
                },
                _ = reconcile.tick() => self.reconcile().await,
            }
        }
    }

    /// Takes the desired state of each kind this process runs, if it is
    /// newer than what was taken. A record that was rejected is not
    /// counted (or logged) again while it stays the same.
    async fn reconcile(&self) {
        for kind in PluginKind::ALL {
            if !self.manager.runs(kind) {
                continue;
            }
            let text = match self.store.desired(kind).await {
                Ok(Some(text)) => text,
                Ok(None) => continue,
                Err(err) => {
                    tracing::debug!(%kind, error = %err, "fleet: cannot read the desired state");
                    continue;
                }
            };
            let known_bad = self
                .taken
                .lock()
                .is_ok_and(|t| t.bad_desired.get(&kind) == Some(&text));
            if known_bad {
                continue;
            }
            if self.take(&text, Origin::Desired).await {
                if let Ok(mut taken) = self.taken.lock() {
                    taken.bad_desired.insert(kind, text);
                }
            }
        }
    }

    /// Verifies, checks the generation of, and applies one command; `true`
    /// if it was rejected.
    async fn take(&self, text: &str, origin: Origin) -> bool {
        let Some(key) = &self.key else { return false };
        let command = match key.verify(text) {
            Ok(command) => command,
            Err(rejection) => {
                self.reject(&rejection, origin);
                return true;
            }
        };
        if !self.manager.runs(command.kind) {
            return false;
        }
        match self.claim(&command, origin) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(rejection) => {
                self.reject(&rejection, origin);
                return true;
            }
        }
        let outcome = self.apply(&command).await;
        if let Ok(mut taken) = self.taken.lock() {
            if outcome.is_ok() && command.action.sets_desired() {
                taken.live.insert(command.kind, command.clone());
            } else if command.action.sets_desired() {
                taken.live.remove(&command.kind);
            }
        }
        self.report(&command, outcome);
        false
    }

    /// A desired version this instance made live that is no longer live
    /// (its automatic rollback, or a local install) is reported once as
    /// refused: the instance keeps what it runs and does not take that
    /// generation again.
    fn notice_replaced(&self) {
        for kind in PluginKind::ALL {
            let Some(active) = self.manager.registry().active(kind) else {
                continue;
            };
            let replaced = match self.taken.lock() {
                Ok(mut taken) => match taken.live.get(&kind) {
                    Some(c) if c.sha256 != active.sha256 => taken.live.remove(&kind),
                    _ => None,
                },
                Err(_) => None,
            };
            let Some(command) = replaced else { continue };
            let last = self.manager.registry().history(kind).pop();
            let how = match &last {
                Some(h) if h.action == "auto_rolled_back" => format!(
                    "rolled back automatically to {}{}",
                    h.version,
                    h.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                Some(h) => format!("replaced on this instance by {} ({})", h.version, h.action),
                None => "replaced on this instance".to_string(),
            };
            self.report(
                &command,
                Err(format!(
                    "{kind} {} is no longer live: {how}",
                    short(&command.sha256)
                )),
            );
        }
    }

    /// Records `command` as taken unless it is not newer than the last one
    /// of its kind. `Ok(false)`: nothing to do, nothing to count: the same
    /// command again, or a desired-state record older than a command taken
    /// since (a shadow command, or the announcement came first). Only on
    /// the control channel is an older generation a replay.
    fn claim(&self, command: &Command, origin: Origin) -> Result<bool, Rejection> {
        let Ok(mut taken) = self.taken.lock() else {
            return Err(Rejection::Malformed("the agent's state is poisoned".into()));
        };
        if let Some(last) = taken.last.get(&command.kind) {
            if last == command {
                return Ok(false);
            }
            if command.generation <= last.generation {
                return match origin {
                    Origin::Desired => Ok(false),
                    Origin::Control => Err(Rejection::Replayed {
                        kind: command.kind,
                        got: command.generation,
                        last: last.generation,
                    }),
                };
            }
        }
        taken.last.insert(command.kind, command.clone());
        Ok(true)
    }

    fn reject(&self, rejection: &Rejection, origin: Origin) {
        let from = match origin {
            Origin::Control => "the control channel",
            Origin::Desired => "the desired-state record",
        };
        tracing::warn!(
            reason = rejection.label(),
            from,
            "fleet command rejected: {rejection}"
        );
        self.count(rejection);
    }

    fn count(&self, rejection: &Rejection) {
        if let Ok(mut taken) = self.taken.lock() {
            *taken
                .rejected
                .entry(rejection.label().to_string())
                .or_default() += 1;
        }
    }

    /// Does what `command` asks; `Err` says why not.
    async fn apply(&self, command: &Command) -> Result<String, String> {
        let kind = command.kind;
        let source = format!("fleet generation {}", command.generation);
        match command.action {
            Action::Install | Action::Rollback | Action::Promote => {
                if self.active_sha256(kind).as_deref() == Some(command.sha256.as_str()) {
                    return Ok(format!(
                        "{kind} {} was already live",
                        short(&command.sha256)
                    ));
                }
                if command.action == Action::Promote
                    && self.manager.shadow_candidate_is(kind, &command.sha256)
                {
                    match self.manager.promote_shadow(kind).await {
                        Ok(done) => return Ok(format!("{kind} {} promoted", done.version)),
                        // The shadow's live version changed: install it afresh.
                        Err(err) => {
                            tracing::info!(%kind, error = %err, "fleet: promote falls back to an install")
                        }
                    }
                }
                let bytes = self.fetch(&command.sha256).await?;
                let done = self
                    .manager
                    .install(kind, bytes, &source)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!("{kind} {} is live", done.version))
            }
            Action::Shadow => {
                let bytes = self.fetch(&command.sha256).await?;
                let duration = command
                    .for_secs
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64);
                match self.manager.start_shadow(kind, bytes, duration).await {
                    Ok(report) => Ok(format!(
                        "{kind} shadow of {} started",
                        report.candidate.version
                    )),
                    Err(err) => Err(err.to_string()),
                }
            }
            Action::ShadowStop => match self.manager.stop_shadow(kind) {
                Ok(_) => Ok(format!("{kind} shadow stopped")),
                Err(InstallError::NoShadow(_)) => Ok(format!("no {kind} shadow was running")),
                Err(err) => Err(err.to_string()),
            },
        }
    }

    /// The component stored under `sha256`, checked against it.
    async fn fetch(&self, sha256: &str) -> Result<Vec<u8>, String> {
        let stored = self.store.blob(sha256).await.map_err(|e| e.to_string())?;
        let Some(bytes) = stored else {
            let rejection = Rejection::BlobMissing(sha256.to_string());
            self.count(&rejection);
            return Err(rejection.to_string());
        };
        let (bytes, actual) = tokio::task::spawn_blocking(move || {
            let actual = crate::manager::sha256_hex(&bytes);
            (bytes, actual)
        })
        .await
        .map_err(|e| format!("hashing the component: {e}"))?;
        if actual != sha256 {
            let rejection = Rejection::HashMismatch {
                expected: sha256.to_string(),
                actual,
            };
            self.count(&rejection);
            return Err(rejection.to_string());
        }
        Ok(bytes)
    }

    fn active_sha256(&self, kind: PluginKind) -> Option<String> {
        self.manager.registry().active(kind).map(|a| a.sha256)
    }

    /// Publishes what became of `command` (and keeps a refusal).
    fn report(&self, command: &Command, outcome: Result<String, String>) {
        let kind = command.kind;
        let (verdict, reason, message) = match &outcome {
            Ok(message) => ("applied", None, message.clone()),
            Err(reason) => {
                tracing::warn!(%kind, generation = command.generation, %reason, "fleet command refused");
                if let Ok(mut taken) = self.taken.lock() {
                    if taken.refused.len() == REFUSED_KEPT {
                        taken.refused.pop_front();
                    }
                    taken.refused.push_back(RefusedCommand {
                        kind,
                        generation: command.generation,
                        sha256: command.sha256.clone(),
                        reason: reason.clone(),
                    });
                }
                (
                    "refused",
                    Some(reason.clone()),
                    format!("{kind} {} refused: {reason}", command.action.as_str()),
                )
            }
        };
        let event = PluginEvent::FleetApplied(FleetApplied {
            kind,
            action: command.action.as_str().to_string(),
            generation: command.generation,
            sha256: command.sha256.clone(),
            outcome: verdict.to_string(),
            reason,
            instance_id: self.identity.instance_id.clone(),
            role: self.identity.role.clone(),
            host: self.identity.host.clone(),
            active_sha256: self.active_sha256(kind),
            message: format!("{} ({}): {message}", self.identity.role, self.identity.host),
            timestamp: health_time(Utc::now()),
        });
        self.bus
            .publish_event(&self.bus.channels().plugins(), &event);
    }

    /// This instance as its heartbeat says it.
    pub fn heartbeat(&self) -> Heartbeat {
        let active = PluginKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let a = self.manager.registry().active(kind)?;
                Some((
                    kind,
                    Running {
                        name: a.name,
                        version: a.version,
                        sha256: a.sha256,
                    },
                ))
            })
            .collect();
        let (generations, rejected, refused) = match self.taken.lock() {
            Ok(t) => (
                t.last.iter().map(|(k, c)| (*k, c.generation)).collect(),
                t.rejected.clone(),
                t.refused.iter().cloned().collect(),
            ),
            Err(_) => Default::default(),
        };
        Heartbeat {
            instance_id: self.identity.instance_id.clone(),
            role: self.identity.role.clone(),
            host: self.identity.host.clone(),
            pid: std::process::id(),
            seen_ms: Utc::now().timestamp_millis(),
            fleet_key: self.key.is_some(),
            active,
            generations,
            rejected,
            refused,
        }
    }

    /// Writes the heartbeat every [`BEAT_EVERY`]; removes it on `cancel`.
    async fn beat(self: Arc<Self>, cancel: CancellationToken) {
        let mut every = tokio::time::interval(BEAT_EVERY);
        let id = self.identity.instance_id.clone();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = every.tick() => {}
            }
            let text = serde_json::to_string(&self.heartbeat()).unwrap_or_default();
            if let Err(err) = self.store.beat(&id, &text).await {
                tracing::debug!(error = %err, "fleet: heartbeat not written");
            }
        }
        // Gone at once from `plugins list`, rather than after the timeout.
        let _ = self.store.forget(&[id]).await;
    }
}

/// The first 12 hex digits of a SHA-256.
pub fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}
