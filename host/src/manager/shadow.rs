//! Shadow runs, as the manager drives them: start one per kind (validated
//! exactly like an install), report on it, end it (by hand, when its time
//! is up, or when the live version changes) and promote its candidate
//! through the normal zero-loss swap. The comparison itself is
//! [`crate::shadow`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{InstallError, Installed, PluginManager};
use crate::events::{health_time, PluginEvent, PluginShadow};
use crate::plugins::{LoadedComponent, PluginKind};
use crate::shadow::report::Side;
use crate::shadow::runner::ShadowThread;
use crate::shadow::{ShadowReport, ShadowTap};

/// How often a running shadow's report is published on `PREFIX:plugins`.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(5);

/// The shadows of one process.
pub(super) struct Shadows {
    taps: HashMap<PluginKind, ShadowTap>,
    by_kind: Mutex<HashMap<PluginKind, Shadow>>,
    /// Tells one shadow of a kind from the next.
    generation: std::sync::atomic::AtomicU64,
}

struct Shadow {
    thread: ShadowThread,
    /// Kept after the shadow ends, so that it can still be promoted, until
    /// the live version changes.
    candidate: Option<Arc<LoadedComponent>>,
    /// The live version it was compared with.
    live_sha256: String,
    generation: u64,
    running: bool,
}

impl Shadows {
    pub(super) fn new(taps: HashMap<PluginKind, ShadowTap>) -> Self {
        Shadows {
            taps,
            by_kind: Mutex::new(HashMap::new()),
            generation: Default::default(),
        }
    }
}

impl PluginManager {
    /// Validates `bytes` as a `kind` plugin, exactly as an install does,
    /// and runs it as a shadow of the live version: on a copy of the same
    /// input, off the hot path, for `duration` (or until stopped).
    pub async fn start_shadow(
        self: &Arc<Self>,
        kind: PluginKind,
        bytes: Vec<u8>,
        duration: Option<Duration>,
    ) -> Result<ShadowReport, InstallError> {
        let tap = self
            .shadows
            .taps
            .get(&kind)
            .cloned()
            .ok_or(InstallError::NotHere(kind))?;
        if self.shadow_running(kind) {
            return Err(InstallError::ShadowRunning(kind));
        }
        let (candidate, _) = self.load(kind, bytes).await?;
        let slot = self.slots.get(&kind).ok_or(InstallError::NotHere(kind))?;
        let (active, live_component) = self.live(kind)?;
        let report = ShadowReport::new(
            kind,
            Side {
                name: active.name.clone(),
                version: active.version.clone(),
                sha256: active.sha256.clone(),
            },
            Side {
                name: String::new(),
                version: String::new(),
                sha256: candidate.sha256.clone(),
            },
        );
        let (thread, inbox) = slot
            .start_shadow(
                self.engine.clone(),
                live_component,
                candidate.clone(),
                report,
            )
            .await?;
        // Under the install lock: an install or rollback that happened
        // while the candidate was checked changed what the shadow would be
        // compared with, and none can happen while it attaches.
        let _one_at_a_time = self.lock().await;
        if self.registry.active(kind).map(|a| a.sha256) != Some(active.sha256.clone()) {
            return Err(InstallError::LiveChanged(kind));
        }
        let generation = {
            let mut shadows = self
                .shadows
                .by_kind
                .lock()
                .map_err(|_| InstallError::Stopped(kind))?;
            if shadows.get(&kind).is_some_and(|s| s.running) {
                // Another start won the race while this one compiled.
                return Err(InstallError::ShadowRunning(kind));
            }
            let generation = self
                .shadows
                .generation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            tap.attach(inbox);
            shadows.insert(
                kind,
                Shadow {
                    thread,
                    candidate: Some(candidate),
                    live_sha256: active.sha256.clone(),
                    generation,
                    running: true,
                },
            );
            generation
        };
        let report = self
            .shadow_report(kind)
            .ok_or(InstallError::NoShadow(kind))?;
        tracing::info!(%kind, candidate = %report.candidate.version, live = %report.live.version, "shadow run started");
        self.publish_shadow(&report, "started");
        let manager = self.clone();
        tokio::spawn(async move {
            manager.watch_shadow(kind, generation, duration).await;
        });
        Ok(report)
    }

    /// The report of the current (or last) shadow of `kind`.
    pub fn shadow_report(&self, kind: PluginKind) -> Option<ShadowReport> {
        let shadows = self.shadows.by_kind.lock().ok()?;
        let shadow = shadows.get(&kind)?;
        if shadow.running {
            if let Some(tap) = self.shadows.taps.get(&kind) {
                shadow.thread.set_skipped(tap.skipped());
            }
        }
        shadow.thread.report()
    }

    /// Ends the shadow of `kind`; returns its final report.
    pub fn stop_shadow(&self, kind: PluginKind) -> Result<ShadowReport, InstallError> {
        if !self.end_shadow(kind, "stopped", None) {
            return Err(InstallError::NoShadow(kind));
        }
        self.shadow_report(kind).ok_or(InstallError::NoShadow(kind))
    }

    /// Installs the candidate of the running (or ended) shadow of `kind`
    /// through the normal swap (state carried over for a health plugin),
    /// as long as the version it was compared with is still the live one
    /// when the swap happens. The shadow ends (`promoted`) only once the
    /// candidate is live.
    pub async fn promote_shadow(
        self: &Arc<Self>,
        kind: PluginKind,
    ) -> Result<Installed, InstallError> {
        let (candidate, compared_with) = {
            let shadows = self
                .shadows
                .by_kind
                .lock()
                .map_err(|_| InstallError::Stopped(kind))?;
            let shadow = shadows.get(&kind).ok_or(InstallError::NoShadow(kind))?;
            let candidate = shadow
                .candidate
                .clone()
                .ok_or(InstallError::NoShadow(kind))?;
            (candidate, shadow.live_sha256.clone())
        };
        self.install_loaded(
            kind,
            Ok((candidate, "memory")),
            0,
            "shadow promotion",
            Some(&compared_with),
        )
        .await
    }

    /// Whether `sha256` is the candidate of the shadow of `kind`.
    pub fn shadow_candidate_is(&self, kind: PluginKind, sha256: &str) -> bool {
        self.shadows.by_kind.lock().is_ok_and(|s| {
            s.get(&kind)
                .and_then(|s| s.candidate.as_ref())
                .is_some_and(|c| c.sha256 == sha256)
        })
    }

    /// Ends the running shadow of `kind` (with `generation`, that one
    /// only), if any, recording `reason`; whether one was running.
    pub(super) fn end_shadow(
        &self,
        kind: PluginKind,
        reason: &str,
        generation: Option<u64>,
    ) -> bool {
        let ended = {
            let Ok(mut shadows) = self.shadows.by_kind.lock() else {
                return false;
            };
            let Some(shadow) = shadows
                .get_mut(&kind)
                .filter(|s| s.running && generation.is_none_or(|g| g == s.generation))
            else {
                return false;
            };
            let tap = self.shadows.taps.get(&kind);
            if let Some(tap) = tap {
                shadow.thread.set_skipped(tap.skipped());
                tap.detach();
            }
            shadow.running = false;
            shadow.thread.end(reason);
            true
        };
        self.forget_candidate_unless_live(kind);
        if ended {
            if let Some(report) = self.shadow_report(kind) {
                tracing::info!(%kind, %reason, summary = %report.summary(), "shadow run ended");
                self.publish_shadow(&report, reason);
            }
        }
        ended
    }

    /// The live version of `kind` and its component.
    fn live(
        &self,
        kind: PluginKind,
    ) -> Result<(crate::plugins::ActivePlugin, Arc<LoadedComponent>), InstallError> {
        self.registry
            .active(kind)
            .and_then(|active| {
                let component = self.history.component(kind, &active.sha256)?;
                Some((active, component))
            })
            .ok_or(InstallError::NotHere(kind))
    }

    /// Drops an ended shadow's candidate once the version it was compared
    /// with is no longer live (it can no longer be promoted).
    pub(super) fn forget_candidate_unless_live(&self, kind: PluginKind) {
        let live = self.registry.active(kind).map(|a| a.sha256);
        if let Ok(mut shadows) = self.shadows.by_kind.lock() {
            if let Some(shadow) = shadows.get_mut(&kind) {
                if !shadow.running && Some(&shadow.live_sha256) != live.as_ref() {
                    shadow.candidate = None;
                }
            }
        }
    }

    fn shadow_running(&self, kind: PluginKind) -> bool {
        self.shadows
            .by_kind
            .lock()
            .is_ok_and(|s| s.get(&kind).is_some_and(|s| s.running))
    }

    /// Why the running shadow of `kind` ended on its own, if it did.
    fn ended_by_itself(&self, kind: PluginKind) -> Option<String> {
        let shadows = self.shadows.by_kind.lock().ok()?;
        shadows.get(&kind)?.thread.ended_by_itself()
    }

    fn is_generation(&self, kind: PluginKind, generation: u64) -> bool {
        self.shadows.by_kind.lock().is_ok_and(|s| {
            s.get(&kind)
                .is_some_and(|s| s.running && s.generation == generation)
        })
    }

    /// Publishes the report every [`PUBLISH_EVERY`] while this shadow
    /// runs, and ends it when its time is up.
    async fn watch_shadow(
        self: Arc<Self>,
        kind: PluginKind,
        generation: u64,
        duration: Option<Duration>,
    ) {
        let until = duration.map(|d| Instant::now() + d);
        loop {
            let sleep = match until {
                Some(until) => PUBLISH_EVERY.min(until.saturating_duration_since(Instant::now())),
                None => PUBLISH_EVERY,
            };
            tokio::time::sleep(sleep).await;
            if !self.is_generation(kind, generation) {
                return;
            }
            if until.is_some_and(|until| Instant::now() >= until) {
                self.end_shadow(kind, "time is up", Some(generation));
                return;
            }
            if let Some(reason) = self.ended_by_itself(kind) {
                self.end_shadow(kind, &reason, Some(generation));
                return;
            }
            if let Some(report) = self.shadow_report(kind) {
                self.publish_shadow(&report, "running");
            }
        }
    }

    fn publish_shadow(&self, report: &ShadowReport, what: &str) {
        let value = serde_json::to_value(report).unwrap_or_default();
        self.publish(PluginEvent::PluginShadow(PluginShadow {
            kind: report.kind,
            report: value,
            message: format!("shadow {what}: {}", report.summary()),
            timestamp: health_time(Utc::now()),
        }));
    }
}
