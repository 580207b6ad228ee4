//! Hot swap of plugins, as operators drive it (admin API, CLI, watched
//! directory): validate a new component off the hot path, switch between
//! two work items, keep the history for rollback, and roll back by itself
//! when a new version keeps failing right after going live.
//!
//! Validation, in order: the bytes are a component; it implements the world
//! of that kind at a compatible contract version ([`PluginEngine::load`]);
//! it passes the world's conformance check on a throwaway instance
//! ([`slot`]). Only then is a fresh instance handed to the plugin's thread.
//! Every outcome is published on `PREFIX:plugins` as a [`PluginEvent`].
//!
//! The manager knows nothing of the roles: each role hands it a
//! [`RunningPlugin`] (a [`LiveSlot`] and the version it started with).

mod auto_rollback;
mod history;
mod shadow;
mod slot;
#[cfg(test)]
mod tests;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};
use thiserror::Error;

pub use auto_rollback::AutoRollback;
pub use slot::{validate, LiveSlot, WentLive};

use crate::bus::Bus;
use crate::events::{health_time, PluginEvent, PluginInstalled, PluginRefused, PluginRolledBack};
use crate::plugins::runner::RunnerError;
use crate::plugins::{
    ActivePlugin, LoadError, LoadedComponent, PluginEngine, PluginKind, PluginRegistry,
};
use crate::shadow::ShadowTap;
use history::{History, Version};

/// Why an install or rollback did not happen. The running version keeps
/// serving in every case.
#[derive(Debug, Error)]
pub enum InstallError {
    /// This process does not run that kind of plugin.
    #[error("this process does not run a {0} plugin")]
    NotHere(PluginKind),
    /// The component was refused when loading.
    #[error("refused: {0}")]
    Refused(#[from] LoadError),
    /// The component loaded but failed the conformance check.
    #[error("refused: the component failed the conformance check: {0}")]
    Conformance(String),
    /// There is nothing to roll back to.
    #[error("there is no earlier {0} version to roll back to")]
    NothingToRollBack(PluginKind),
    /// The plugin's thread did not take the new version.
    #[error("the {0} plugin could not be swapped: {1}")]
    Swap(PluginKind, RunnerError),
    /// A blocking task of the install failed (the runtime is shutting
    /// down, or the task panicked).
    #[error("the {0} install task stopped before it finished")]
    Stopped(PluginKind),
    /// A shadow of this kind is already running (one at a time).
    #[error("a {0} shadow is already running; stop it first (DELETE /admin/plugins/{0}/shadow)")]
    ShadowRunning(PluginKind),
    /// No shadow of this kind is running (or has run).
    #[error("no {0} shadow is running")]
    NoShadow(PluginKind),
    /// The shadow thread could not start.
    #[error("the {0} shadow could not start: {1}")]
    ShadowStart(PluginKind, String),
    /// The live version changed while a shadow was being started or
    /// promoted: what it was compared with is no longer live.
    #[error("the live {0} version changed meanwhile; the shadow compared with another one (start a new shadow)")]
    LiveChanged(PluginKind),
}

impl InstallError {
    /// Whether the caller's input is at fault (HTTP 4xx) rather than the host.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            InstallError::Stopped(_) | InstallError::Swap(..) | InstallError::ShadowStart(..)
        )
    }
}

/// What an install or rollback did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Installed {
    /// The kind.
    pub kind: PluginKind,
    /// Name of the version now live.
    pub name: String,
    /// Version now live.
    pub version: String,
    /// Its contract version.
    pub wit_version: String,
    /// The version it replaced.
    pub previous_version: Option<String>,
    /// How long the hot path paused for the switch, in microseconds.
    pub pause_us: u64,
    /// For health plugins: whether the old state was carried over, or why not.
    pub state: Option<String>,
    /// Time spent hashing, compiling (or reading the compiled cache) and
    /// checking the component before the swap, in milliseconds (0 for a
    /// rollback).
    pub load_ms: u64,
    /// Where the compiled code came from: `compiled`, `cache` (the on-disk
    /// compiled cache) or `memory` (a version this process already holds).
    pub loaded_from: Option<&'static str>,
}

/// A plugin kind as a role runs it: where swaps go, and the version it
/// started with (the first rollback target).
#[derive(Clone)]
pub struct RunningPlugin {
    /// Swaps the live instance.
    pub slot: Arc<dyn LiveSlot>,
    /// Where its live thread offers inputs to a shadow run.
    pub tap: ShadowTap,
    /// The component it started with.
    pub component: Arc<LoadedComponent>,
    /// Where that came from.
    pub source: String,
}

/// Installs and rolls back the plugins of the roles running in this process.
pub struct PluginManager {
    engine: PluginEngine,
    registry: Arc<PluginRegistry>,
    bus: Bus,
    slots: HashMap<PluginKind, Arc<dyn LiveSlot>>,
    history: History,
    /// One install or rollback at a time.
    busy: tokio::sync::Mutex<()>,
    auto: AutoRollback,
    /// Shadow runs, one per kind at most.
    shadows: shadow::Shadows,
}

impl PluginManager {
    /// A manager for the plugins the roles of this process run.
    pub fn new(
        engine: PluginEngine,
        registry: Arc<PluginRegistry>,
        bus: Bus,
        auto: AutoRollback,
        running: Vec<RunningPlugin>,
    ) -> Arc<Self> {
        let history = History::default();
        let mut slots = HashMap::new();
        let mut taps = HashMap::new();
        for plugin in running {
            slots.insert(plugin.component.kind, plugin.slot);
            taps.insert(plugin.component.kind, plugin.tap);
            history.push(Version {
                component: plugin.component,
                source: plugin.source,
            });
        }
        Arc::new(PluginManager {
            engine,
            registry,
            bus,
            slots,
            history,
            busy: tokio::sync::Mutex::new(()),
            auto,
            shadows: shadow::Shadows::new(taps),
        })
    }

    /// The registry of active versions.
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// Whether this process runs a plugin of `kind`.
    pub fn runs(&self, kind: PluginKind) -> bool {
        self.slots.contains_key(&kind)
    }

    /// Holds off every other install and rollback while the guard lives.
    async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.busy.lock().await
    }

    /// Validates `bytes` as a `kind` plugin and, if it passes, makes it live.
    pub async fn install(
        self: &Arc<Self>,
        kind: PluginKind,
        bytes: Vec<u8>,
        source: &str,
    ) -> Result<Installed, InstallError> {
        // Compiling a large component takes seconds: never under the lock
        // that other installs and rollbacks wait for.
        let started = std::time::Instant::now();
        let loaded = self.load(kind, bytes).await;
        let load_ms = started.elapsed().as_millis() as u64;
        self.install_loaded(kind, loaded, load_ms, source, None)
            .await
    }

    /// Makes an already loaded component live (or records why not); with
    /// `only_over`, only if that (SHA-256) is still the live version once
    /// the install lock is held.
    async fn install_loaded(
        self: &Arc<Self>,
        kind: PluginKind,
        loaded: Result<(Arc<LoadedComponent>, &'static str), InstallError>,
        load_ms: u64,
        source: &str,
        only_over: Option<&str>,
    ) -> Result<Installed, InstallError> {
        let _one_at_a_time = self.lock().await;
        let live = self.registry.active(kind).map(|a| a.sha256);
        let loaded = match (loaded, only_over) {
            (Ok(_), Some(expected)) if live.as_deref() != Some(expected) => {
                Err(InstallError::LiveChanged(kind))
            }
            (loaded, _) => loaded,
        };
        let result = match loaded {
            Ok((component, from)) => {
                self.install_locked(component, source)
                    .await
                    .map(|done| Installed {
                        load_ms,
                        loaded_from: Some(from),
                        ..done
                    })
            }
            Err(err) => Err(err),
        };
        let timestamp = health_time(Utc::now());
        match &result {
            Ok(done) => {
                let was = done.previous_version.as_deref().unwrap_or("none");
                self.publish(PluginEvent::PluginInstalled(PluginInstalled {
                    kind,
                    name: done.name.clone(),
                    version: done.version.clone(),
                    wit_version: done.wit_version.clone(),
                    previous_version: done.previous_version.clone(),
                    pause_us: done.pause_us,
                    state: done.state.clone(),
                    source: source.to_string(),
                    message: format!("{kind} {} installed (was {was})", done.version),
                    timestamp,
                }));
                auto_rollback::watch(self, kind, self.auto);
            }
            Err(err) => {
                tracing::warn!(%kind, %source, error = %err, "plugin install refused");
                self.publish(PluginEvent::PluginRefused(PluginRefused {
                    kind,
                    source: source.to_string(),
                    reason: err.to_string(),
                    message: format!("{kind} upload refused: {err}"),
                    timestamp,
                }));
            }
        }
        result
    }

    /// Compiles (or takes from the cache) and checks `bytes` as `kind`.
    async fn load(
        &self,
        kind: PluginKind,
        bytes: Vec<u8>,
    ) -> Result<(Arc<LoadedComponent>, &'static str), InstallError> {
        if !self.runs(kind) {
            return Err(InstallError::NotHere(kind));
        }
        // The same bytes again (a swap back and forth): reuse what is
        // loaded, rather than a second copy of the compiled code. (Hashing
        // a large component takes a while: off the async threads.)
        let (bytes, sha) = tokio::task::spawn_blocking(move || {
            let sha = sha256_hex(&bytes);
            (bytes, sha)
        })
        .await
        .map_err(|_| InstallError::Stopped(kind))?;
        if let Some(known) = self.history.component(kind, &sha) {
            return Ok((known, "memory"));
        }
        let engine = self.engine.clone();
        let component = tokio::task::spawn_blocking(move || engine.load(kind, &bytes))
            .await
            .map_err(|_| InstallError::Stopped(kind))??;
        let from = match component.cache {
            crate::plugins::CacheOutcome::Hit => "cache",
            _ => "compiled",
        };
        Ok((Arc::new(component), from))
    }

    async fn install_locked(
        &self,
        component: Arc<LoadedComponent>,
        source: &str,
    ) -> Result<Installed, InstallError> {
        let version = Version {
            component,
            source: source.to_string(),
        };
        let done = self.activate(&version, "installed", None).await?;
        let (engine, kept) = (self.engine.clone(), version.component.clone());
        tokio::task::spawn_blocking(move || engine.keep(&kept));
        self.history.push(version);
        Ok(done)
    }

    /// Rolls `kind` back to the version before the active one.
    pub async fn rollback(
        self: &Arc<Self>,
        kind: PluginKind,
        reason: Option<String>,
    ) -> Result<Installed, InstallError> {
        let _one_at_a_time = self.lock().await;
        self.rollback_locked(kind, reason, false).await
    }

    async fn rollback_locked(
        &self,
        kind: PluginKind,
        reason: Option<String>,
        automatic: bool,
    ) -> Result<Installed, InstallError> {
        if !self.runs(kind) {
            return Err(InstallError::NotHere(kind));
        }
        let target = self
            .history
            .previous(kind)
            .ok_or(InstallError::NothingToRollBack(kind))?;
        let action = if automatic {
            "auto_rolled_back"
        } else {
            "rolled_back"
        };
        let done = self.activate(&target, action, reason.clone()).await?;
        self.history.pop(kind);
        tracing::warn!(%kind, to = %done.version, automatic, reason = reason.as_deref().unwrap_or(""), "plugin rolled back");
        let why = reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        self.publish(PluginEvent::PluginRolledBack(PluginRolledBack {
            kind,
            from_version: done.previous_version.clone(),
            version: done.version.clone(),
            automatic,
            reason,
            state: done.state.clone(),
            message: format!("{kind} rolled back to {}{why}", done.version),
            timestamp: health_time(Utc::now()),
        }));
        Ok(done)
    }

    /// Makes a fresh instance of `version` live and records it.
    async fn activate(
        &self,
        version: &Version,
        action: &str,
        reason: Option<String>,
    ) -> Result<Installed, InstallError> {
        let kind = version.component.kind;
        let slot = self.slots.get(&kind).ok_or(InstallError::NotHere(kind))?;
        let previous = self.registry.active(kind);
        let live = slot
            .go_live(self.engine.clone(), version.component.clone())
            .await?;
        let WentLive {
            info,
            stats,
            pause,
            state,
        } = live;
        // A shadow compares with the version that was live: no longer
        // (installing its own candidate is its promotion).
        let why = if self.shadow_candidate_is(kind, &version.component.sha256) {
            "promoted".to_string()
        } else {
            format!("the live version changed to {}", info.version)
        };
        self.end_shadow(kind, &why, None);
        self.registry.activate(
            ActivePlugin {
                kind,
                name: info.name.clone(),
                version: info.version.clone(),
                wit_version: version.component.wit_version.clone(),
                sha256: version.component.sha256.clone(),
                loaded_at: Utc::now(),
                source: version.source.clone(),
                stats,
            },
            action,
            reason,
        );
        // An ended shadow's candidate can no longer be promoted.
        self.forget_candidate_unless_live(kind);
        Ok(Installed {
            kind,
            name: info.name,
            version: info.version,
            wit_version: version.component.wit_version.clone(),
            previous_version: previous.map(|p| p.version),
            pause_us: pause.as_micros() as u64,
            state: state.map(|carried| match carried {
                Ok(()) => "carried over".to_string(),
                Err(why) => format!("started fresh: {why}"),
            }),
            load_ms: 0,
            loaded_from: None,
        })
    }

    fn publish(&self, event: PluginEvent) {
        self.bus
            .publish_event(&self.bus.channels().plugins(), &event);
    }

    /// Everything `GET /admin/plugins` shows.
    pub fn describe(&self) -> Value {
        let plugins: Vec<Value> = PluginKind::ALL
            .into_iter()
            .filter(|k| self.runs(*k))
            .map(|kind| {
                json!({
                    "kind": kind,
                    "active": self.registry.active(kind).map(|a| PluginEvent::PluginStatus(a.status())),
                    "history": self.registry.history(kind),
                    "rollback_stack": self.history.summary(kind),
                })
            })
            .collect();
        json!({"plugins": plugins, "wit_accepted": crate::contract::WIT_ACCEPTED})
    }

    /// Watches `dir` for new versions (see [`watch`]).
    pub fn watch_dir(
        self: &Arc<Self>,
        dir: std::path::PathBuf,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        watch::watch(self, dir, cancel);
    }
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
