//! Hot swap of plugins, as operators drive it (admin API, CLI, watched
//! directory): validate a new component off the hot path, switch between
//! two batches, keep the history for rollback, and roll back by itself
//! when a new version keeps failing right after going live.
//!
//! Validation, in order: the bytes are a component; it implements the world
//! of that kind at a compatible contract version ([`PluginEngine::load`]);
//! it passes the conformance check on a throwaway instance (golden frames
//! for normalizers, a scripted session for health). Only then is a fresh
//! instance handed to the thread that runs the plugin, which switches
//! between two frames (normalizer) or two batches (health, importing the
//! old version's state). Every step's outcome is published on
//! `PREFIX:plugins`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use thiserror::Error;

use crate::bus::Bus;
use crate::events::health_time;
use crate::pipeline::Swap;
use crate::plugins::conformance::{check_health, check_normalizer, Strictness};
use crate::plugins::{
    ActivePlugin, CallStats, HealthPlugin, LoadError, LoadedComponent, NormalizerPlugin,
    PluginEngine, PluginKind, PluginRegistry,
};
use crate::roles::process::HealthHandle;

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
    /// The plugin's thread is gone (the role is shutting down).
    #[error("the {0} plugin's thread has stopped")]
    Stopped(PluginKind),
}

impl InstallError {
    /// Whether the caller's input is at fault (HTTP 4xx) rather than the host.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, InstallError::Stopped(_))
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
}

/// Automatic rollback: a new version that fails this often within this
/// long after going live is rolled back.
#[derive(Debug, Clone, Copy)]
pub struct AutoRollback {
    /// How long after going live failures count.
    pub window: Duration,
    /// Failures (trap, deadline, memory) that trigger the rollback.
    pub max_failures: u64,
}

impl Default for AutoRollback {
    fn default() -> Self {
        AutoRollback {
            window: Duration::from_secs(60),
            max_failures: 3,
        }
    }
}

#[derive(Clone)]
struct Version {
    component: Arc<LoadedComponent>,
    source: String,
}

/// Installs and rolls back the plugins of the roles running in this process.
pub struct PluginManager {
    engine: PluginEngine,
    registry: Arc<PluginRegistry>,
    bus: Bus,
    normalizer: Option<Mutex<std::sync::mpsc::Sender<Swap>>>,
    health: Option<HealthHandle>,
    /// Per kind, the versions that went live, oldest first; the last is active.
    versions: Mutex<HashMap<PluginKind, Vec<Version>>>,
    /// One install or rollback at a time.
    busy: tokio::sync::Mutex<()>,
    auto: AutoRollback,
}

impl PluginManager {
    /// A manager for the roles whose swap channels are given.
    pub fn new(
        engine: PluginEngine,
        registry: Arc<PluginRegistry>,
        bus: Bus,
        normalizer: Option<std::sync::mpsc::Sender<Swap>>,
        health: Option<HealthHandle>,
        auto: AutoRollback,
    ) -> Arc<Self> {
        Arc::new(PluginManager {
            engine,
            registry,
            bus,
            normalizer: normalizer.map(Mutex::new),
            health,
            versions: Mutex::new(HashMap::new()),
            busy: tokio::sync::Mutex::new(()),
            auto,
        })
    }

    /// Records the version a role started with (the first rollback target).
    pub fn started_with(&self, component: Arc<LoadedComponent>, source: String) {
        if let Ok(mut versions) = self.versions.lock() {
            versions
                .entry(component.kind)
                .or_default()
                .push(Version { component, source });
        }
    }

    /// The registry of active versions.
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// Whether this process runs a plugin of `kind`.
    pub fn runs(&self, kind: PluginKind) -> bool {
        match kind {
            PluginKind::Normalizer => self.normalizer.is_some(),
            PluginKind::Health => self.health.is_some(),
        }
    }

    /// Validates `bytes` as a `kind` plugin and, if it passes, makes it live.
    pub async fn install(
        self: &Arc<Self>,
        kind: PluginKind,
        bytes: Vec<u8>,
        source: &str,
    ) -> Result<Installed, InstallError> {
        let _one_at_a_time = self.busy.lock().await;
        let result = self.install_locked(kind, bytes, source).await;
        match &result {
            Ok(done) => {
                self.publish(json!({
                    "type": "plugin_installed",
                    "kind": kind,
                    "name": done.name,
                    "version": done.version,
                    "wit_version": done.wit_version,
                    "previous_version": done.previous_version,
                    "pause_us": done.pause_us,
                    "state": done.state,
                    "source": source,
                    "message": format!("{kind} {} installed (was {})", done.version, done.previous_version.as_deref().unwrap_or("none")),
                }));
                self.watch_new_version(kind);
            }
            Err(err) => {
                tracing::warn!(%kind, %source, error = %err, "plugin install refused");
                self.publish(json!({
                    "type": "plugin_refused",
                    "kind": kind,
                    "source": source,
                    "reason": err.to_string(),
                    "message": format!("{kind} upload refused: {err}"),
                }));
            }
        }
        result
    }

    async fn install_locked(
        &self,
        kind: PluginKind,
        bytes: Vec<u8>,
        source: &str,
    ) -> Result<Installed, InstallError> {
        if !self.runs(kind) {
            return Err(InstallError::NotHere(kind));
        }
        let engine = self.engine.clone();
        let component = tokio::task::spawn_blocking(move || engine.load(kind, &bytes))
            .await
            .map_err(|_| InstallError::Stopped(kind))??;
        let version = Version {
            component: Arc::new(component),
            source: source.to_string(),
        };
        let done = self.activate(&version, "installed", None).await?;
        if let Ok(mut versions) = self.versions.lock() {
            versions.entry(kind).or_default().push(version);
        }
        Ok(done)
    }

    /// Rolls `kind` back to the version before the active one.
    pub async fn rollback(
        self: &Arc<Self>,
        kind: PluginKind,
        reason: Option<String>,
    ) -> Result<Installed, InstallError> {
        let _one_at_a_time = self.busy.lock().await;
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
        let target = {
            let versions = self
                .versions
                .lock()
                .map_err(|_| InstallError::Stopped(kind))?;
            let stack = versions.get(&kind).map(Vec::as_slice).unwrap_or_default();
            if stack.len() < 2 {
                return Err(InstallError::NothingToRollBack(kind));
            }
            stack[stack.len() - 2].clone()
        };
        let action = if automatic {
            "auto_rolled_back"
        } else {
            "rolled_back"
        };
        let done = self.activate(&target, action, reason.clone()).await?;
        if let Ok(mut versions) = self.versions.lock() {
            if let Some(stack) = versions.get_mut(&kind) {
                stack.pop();
            }
        }
        tracing::warn!(%kind, to = %done.version, automatic, reason = reason.as_deref().unwrap_or(""), "plugin rolled back");
        self.publish(json!({
            "type": "plugin_rolled_back",
            "kind": kind,
            "from_version": done.previous_version,
            "version": done.version,
            "automatic": automatic,
            "reason": reason,
            "state": done.state,
            "message": format!("{kind} rolled back to {}{}", done.version, reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()),
        }));
        Ok(done)
    }

    /// Conformance on a throwaway instance, then a fresh instance goes live.
    async fn activate(
        &self,
        version: &Version,
        action: &str,
        reason: Option<String>,
    ) -> Result<Installed, InstallError> {
        let kind = version.component.kind;
        let previous = self.registry.active(kind);
        let engine = self.engine.clone();
        let component = version.component.clone();
        let (info, stats, pause, state) = match kind {
            PluginKind::Normalizer => {
                let live = tokio::task::spawn_blocking(
                    move || -> Result<NormalizerPlugin, InstallError> {
                        let mut probe = NormalizerPlugin::new(&engine, component.clone())?;
                        check_normalizer(&mut probe, Strictness::Superset)
                            .map_err(|p| InstallError::Conformance(p.join("; ")))?;
                        let mut live = NormalizerPlugin::new(&engine, component)?;
                        // Its first live frame should not pay for first-touch set-up.
                        let _ = live.warm_up();
                        Ok(live)
                    },
                )
                .await
                .map_err(|_| InstallError::Stopped(kind))??;
                let (info, stats) = (live.info().clone(), live.stats().clone());
                let (done, swapped) = tokio::sync::oneshot::channel();
                let sent = self
                    .normalizer
                    .as_ref()
                    .and_then(|tx| {
                        tx.lock()
                            .ok()
                            .map(|tx| tx.send(Swap { plugin: live, done }).is_ok())
                    })
                    .unwrap_or(false);
                if !sent {
                    return Err(InstallError::Stopped(kind));
                }
                let swapped = swapped.await.map_err(|_| InstallError::Stopped(kind))?;
                let pause = swapped.pause;
                // Dropping an instance unmaps its memory: not on the hot path.
                tokio::task::spawn_blocking(move || drop(swapped.old));
                (info, stats, pause, None)
            }
            PluginKind::Health => {
                let live =
                    tokio::task::spawn_blocking(move || -> Result<HealthPlugin, InstallError> {
                        let mut probe = HealthPlugin::new(&engine, component.clone())?;
                        check_health(&mut probe)
                            .map_err(|p| InstallError::Conformance(p.join("; ")))?;
                        Ok(HealthPlugin::new(&engine, component)?)
                    })
                    .await
                    .map_err(|_| InstallError::Stopped(kind))??;
                let (info, stats) = (live.info().clone(), live.stats().clone());
                let handle = self.health.as_ref().ok_or(InstallError::NotHere(kind))?;
                let swapped = handle
                    .swap(live)
                    .await
                    .map_err(|_| InstallError::Stopped(kind))?;
                let state = match &swapped.state {
                    Ok(()) => "carried over".to_string(),
                    Err(why) => format!("started fresh: {why}"),
                };
                let pause = swapped.pause;
                tokio::task::spawn_blocking(move || drop(swapped.old));
                (info, stats, pause, Some(state))
            }
        };
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
        Ok(Installed {
            kind,
            name: info.name,
            version: info.version,
            wit_version: version.component.wit_version.clone(),
            previous_version: previous.map(|p| p.version),
            pause_us: pause.as_micros() as u64,
            state,
        })
    }

    /// Rolls a freshly installed version back if it fails
    /// `max_failures` times within `window` of going live.
    fn watch_new_version(self: &Arc<Self>, kind: PluginKind) {
        let Some(active) = self.registry.active(kind) else {
            return;
        };
        let manager = Arc::clone(self);
        let auto = self.auto;
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            while start.elapsed() < auto.window {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let still_active = manager.registry.active(kind).is_some_and(|a| {
                    a.sha256 == active.sha256 && Arc::ptr_eq(&a.stats, &active.stats)
                });
                if !still_active {
                    return;
                }
                let failures = CallStats::get(&active.stats.errors);
                if failures >= auto.max_failures {
                    let reason = format!(
                        "{} {} failed {failures} times within {}s of going live",
                        kind,
                        active.version,
                        start.elapsed().as_secs()
                    );
                    let _one_at_a_time = manager.busy.lock().await;
                    if let Err(err) = manager.rollback_locked(kind, Some(reason), true).await {
                        tracing::error!(%kind, error = %err, "automatic rollback failed");
                    }
                    return;
                }
            }
        });
    }

    fn publish(&self, mut event: Value) {
        if let Some(obj) = event.as_object_mut() {
            obj.insert("timestamp".into(), Value::from(health_time(Utc::now())));
        }
        self.bus
            .publish_to(&self.bus.channels().plugins(), event.to_string());
    }

    /// Everything `GET /admin/plugins` shows.
    pub fn describe(&self) -> Value {
        let versions = self.versions.lock().map(|v| v.clone()).unwrap_or_default();
        let plugins: Vec<Value> = crate::plugins::PluginKind::ALL
            .into_iter()
            .filter(|k| self.runs(*k))
            .map(|kind| {
                let available: Vec<Value> = versions
                    .get(&kind)
                    .map(|stack| {
                        stack.iter().map(|v| json!({"sha256": v.component.sha256, "wit_version": v.component.wit_version, "source": v.source})).collect()
                    })
                    .unwrap_or_default();
                json!({
                    "kind": kind,
                    "active": self.registry.active(kind).map(|a| a.status_json()),
                    "history": self.registry.history(kind),
                    "rollback_stack": available,
                })
            })
            .collect();
        json!({"plugins": plugins, "wit_accepted": crate::plugins::WIT_ACCEPTED})
    }

    /// Watches `dir` for new or changed `normalizer*.wasm` / `health*.wasm`
    /// files and installs them through [`Self::install`]. Polls once a
    /// second (works on every filesystem, and an atomic rename shows up as
    /// a change); a file must keep the same size for two polls, so a copy
    /// in progress is not installed half-written.
    pub fn watch_dir(
        self: &Arc<Self>,
        dir: std::path::PathBuf,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        let manager = Arc::clone(self);
        // What is there now is what the roles started with: it counts as
        // installed. Scanned before returning, so a file written right after
        // start-up is seen as new.
        let mut installed: HashMap<std::path::PathBuf, String> = HashMap::new();
        for (path, bytes) in scan(&dir) {
            installed.insert(path, sha(&bytes));
        }
        tokio::spawn(async move {
            let mut sizes: HashMap<std::path::PathBuf, u64> = HashMap::new();
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = every.tick() => {}
                }
                for (path, bytes) in scan(&dir) {
                    let size = bytes.len() as u64;
                    if sizes.insert(path.clone(), size) != Some(size) {
                        continue; // still changing, or new: look again next time
                    }
                    let hash = sha(&bytes);
                    if installed.get(&path) == Some(&hash) {
                        continue;
                    }
                    installed.insert(path.clone(), hash);
                    let Some(kind) = kind_of(&path) else { continue };
                    if !manager.runs(kind) {
                        continue;
                    }
                    let source = path.display().to_string();
                    match manager.install(kind, bytes, &source).await {
                        Ok(done) => {
                            tracing::info!(%kind, version = %done.version, %source, "installed from the plugin directory")
                        }
                        Err(err) => {
                            tracing::warn!(%kind, %source, error = %err, "plugin file refused")
                        }
                    }
                }
            }
        });
    }
}

fn kind_of(path: &std::path::Path) -> Option<PluginKind> {
    let name = path.file_name()?.to_str()?;
    if !name.ends_with(".wasm") {
        return None;
    }
    if name.starts_with("normalizer") {
        Some(PluginKind::Normalizer)
    } else if name.starts_with("health") {
        Some(PluginKind::Health)
    } else {
        None
    }
}

fn scan(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| kind_of(p).is_some())
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
