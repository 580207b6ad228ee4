//! [`LiveSlot`]: a plugin kind running in this process, as the manager
//! drives it. Implemented once, for the [`Swapper`] of any world: build a
//! throwaway instance and run the world's conformance check on it, build
//! and warm the live instance, swap it in between two work items, drop the
//! old one off the hot path.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::InstallError;
use crate::plugins::runner::{Inbox, RunnerOptions, Swapper};
use crate::plugins::{
    CallStats, LoadedComponent, Plugin, PluginEngine, PluginInfo, PluginKind, World,
};
use crate::plugins::{HealthExports, NormalizerExports};
use crate::shadow::runner::{ShadowThread, Shadowed};
use crate::shadow::{ShadowInput, ShadowReport};

/// How long a swap may wait for the plugin's thread (it finishes the call
/// in progress first; a call is bounded by its deadline, and a stuck one is
/// abandoned by the thread's watchdog).
const SWAP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the conformance check (every call under its own deadline) and
/// the live instance's set-up may take in all.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);

/// What went live.
pub struct WentLive {
    /// The new version's name and version.
    pub info: PluginInfo,
    /// Its call counters.
    pub stats: Arc<CallStats>,
    /// How long the plugin's thread paused for the switch.
    pub pause: Duration,
    /// For stateful worlds: whether the state was carried over, or why not.
    pub state: Option<Result<(), String>>,
}

/// A plugin kind that runs in this process.
pub trait LiveSlot: Send + Sync {
    /// Validates `component` on a throwaway instance and makes a fresh
    /// instance of it live.
    fn go_live(
        &self,
        engine: PluginEngine,
        component: Arc<LoadedComponent>,
    ) -> BoxFuture<'_, Result<WentLive, InstallError>>;

    /// Validates `candidate` as `go_live` does and starts its shadow thread
    /// beside a fresh instance of `live`.
    fn start_shadow(
        &self,
        engine: PluginEngine,
        live: Arc<LoadedComponent>,
        candidate: Arc<LoadedComponent>,
        report: ShadowReport,
    ) -> BoxFuture<'_, Result<(ShadowThread, Inbox<ShadowInput>), InstallError>>;
}

impl<W: Shadowed> LiveSlot for Swapper<W> {
    fn go_live(
        &self,
        engine: PluginEngine,
        component: Arc<LoadedComponent>,
    ) -> BoxFuture<'_, Result<WentLive, InstallError>> {
        Box::pin(async move {
            let kind = W::KIND;
            let prepared = tokio::task::spawn_blocking(move || prepare::<W>(&engine, component));
            let live = match tokio::time::timeout(PREPARE_TIMEOUT, prepared).await {
                Ok(joined) => joined.map_err(|_| InstallError::Stopped(kind))??,
                // The blocking thread finishes on its own; nothing waits for it.
                Err(_) => {
                    return Err(InstallError::Conformance(format!(
                        "the check did not finish within {PREPARE_TIMEOUT:?}"
                    )))
                }
            };
            let (info, stats) = (live.info().clone(), live.stats().clone());
            let swapped = self
                .swap(live, SWAP_TIMEOUT)
                .await
                .map_err(|e| InstallError::Swap(kind, e))?;
            // Dropping an instance unmaps its memory: not on the hot path.
            let old = swapped.old;
            tokio::task::spawn_blocking(move || drop(old));
            Ok(WentLive {
                info,
                stats,
                pause: swapped.pause,
                state: swapped.state,
            })
        })
    }

    fn start_shadow(
        &self,
        engine: PluginEngine,
        live: Arc<LoadedComponent>,
        candidate: Arc<LoadedComponent>,
        mut report: ShadowReport,
    ) -> BoxFuture<'_, Result<(ShadowThread, Inbox<ShadowInput>), InstallError>> {
        Box::pin(async move {
            let kind = W::KIND;
            let started = tokio::task::spawn_blocking(move || {
                let candidate = prepare::<W>(&engine, candidate)?;
                report.candidate.name = candidate.info().name.clone();
                report.candidate.version = candidate.info().version.clone();
                let live = Plugin::<W>::new(&engine, live)?;
                crate::shadow::runner::spawn(live, candidate, report, RunnerOptions::default())
                    .map_err(|e| InstallError::ShadowStart(kind, e.to_string()))
            });
            match tokio::time::timeout(PREPARE_TIMEOUT, started).await {
                Ok(joined) => joined.map_err(|_| InstallError::Stopped(kind))?,
                Err(_) => Err(InstallError::Conformance(format!(
                    "the check did not finish within {PREPARE_TIMEOUT:?}"
                ))),
            }
        })
    }
}

/// Validates `bytes` as a `kind` plugin as an install does (a component of
/// that world at a compatible contract version that passes the world's
/// conformance check on a throwaway instance), without making it live
/// anywhere: for a process that hands the component on (the fleet's
/// issuer). Keeps the compiled code in the cache on success.
pub async fn validate(
    engine: PluginEngine,
    kind: PluginKind,
    bytes: Vec<u8>,
) -> Result<(Arc<LoadedComponent>, PluginInfo), InstallError> {
    let checked = tokio::task::spawn_blocking(move || {
        let component = Arc::new(engine.load(kind, &bytes)?);
        let info = match kind {
            PluginKind::Normalizer => probe::<NormalizerExports>(&engine, component.clone())?,
            PluginKind::Health => probe::<HealthExports>(&engine, component.clone())?,
        };
        engine.keep(&component);
        Ok((component, info))
    });
    match tokio::time::timeout(PREPARE_TIMEOUT, checked).await {
        Ok(joined) => joined.map_err(|_| InstallError::Stopped(kind))?,
        Err(_) => Err(InstallError::Conformance(format!(
            "the check did not finish within {PREPARE_TIMEOUT:?}"
        ))),
    }
}

/// The conformance check on a throwaway instance; its info.
fn probe<W: World>(
    engine: &PluginEngine,
    component: Arc<LoadedComponent>,
) -> Result<PluginInfo, InstallError> {
    let mut probe = Plugin::<W>::new(engine, component)?;
    W::conformance(&mut probe).map_err(|p| InstallError::Conformance(p.join("; ")))?;
    Ok(probe.info().clone())
}

/// Conformance on a throwaway instance, then the live instance, warmed.
fn prepare<W: World>(
    engine: &PluginEngine,
    component: Arc<LoadedComponent>,
) -> Result<Plugin<W>, InstallError> {
    probe::<W>(engine, component.clone())?;
    let mut live = Plugin::<W>::new(engine, component)?;
    W::warm_up(&mut live);
    Ok(live)
}
