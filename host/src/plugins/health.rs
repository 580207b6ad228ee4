//! A live health plugin: batches of ticks in, health reports out, state
//! exportable so a later version can continue it.

use std::sync::Arc;

use wasmtime::component::Instance;
use wasmtime::Store;

use super::bindings::{health_metrics, HealthReport, HostState, PluginInfo, Tick};
use super::ctx::PluginCtx;
use super::engine::{LoadedComponent, PluginEngine};
use super::error::{CallError, LoadError};
use super::instance::{Live, WorldExports};
use super::kind::PluginKind;
use super::stats::CallStats;

impl WorldExports for health_metrics::Guest {
    fn load(
        component: &LoadedComponent,
        store: &mut Store<PluginCtx>,
        instance: &Instance,
    ) -> wasmtime::Result<Self> {
        health_metrics::GuestIndices::new(&component.pre)?.load(store, instance)
    }

    fn info(&self, store: &mut Store<PluginCtx>) -> wasmtime::Result<PluginInfo> {
        self.call_info(store)
    }
}

/// A health instance, long-lived: it holds the windows and totals.
pub struct HealthPlugin {
    live: Live<health_metrics::Guest>,
}

impl HealthPlugin {
    /// Instantiates a loaded health component.
    pub fn new(engine: &PluginEngine, component: Arc<LoadedComponent>) -> Result<Self, LoadError> {
        if component.kind != PluginKind::Health {
            return Err(LoadError::WrongKind {
                expected: "health",
                found: component.kind.as_str(),
                export: component.kind.export_interface().to_string(),
            });
        }
        Ok(HealthPlugin {
            live: Live::new(engine, component)?,
        })
    }

    /// Feeds a batch of ticks that arrived at `now_ms` (Unix ms).
    pub fn observe(&mut self, ticks: &[Tick], now_ms: i64) -> Result<(), CallError> {
        self.live
            .call(|exports, store| exports.call_observe(store, ticks, now_ms))
    }

    /// The health report as of `now_ms`.
    pub fn report(&mut self, now_ms: i64, host: &HostState) -> Result<HealthReport, CallError> {
        self.live
            .call(|exports, store| exports.call_report(store, now_ms, host))
    }

    /// The plugin's serialized state.
    pub fn export_state(&mut self) -> Result<Vec<u8>, CallError> {
        self.live
            .call(|exports, store| exports.call_export_state(store))
    }

    /// Loads state exported by `previous` (this or another version). The
    /// outer error is a failed call; the inner one is the plugin refusing
    /// the state (it then starts fresh).
    pub fn import_state(
        &mut self,
        state: &[u8],
        previous: &PluginInfo,
    ) -> Result<Result<(), String>, CallError> {
        self.live
            .call(|exports, store| exports.call_import_state(store, state, previous))
    }

    /// The plugin's name and version.
    pub fn info(&self) -> &PluginInfo {
        self.live.info()
    }

    /// `name@version`.
    pub fn label(&self) -> &str {
        self.live.label()
    }

    /// The component behind this instance.
    pub fn component(&self) -> &Arc<LoadedComponent> {
        self.live.component()
    }

    /// Call counters and latency of this instance.
    pub fn stats(&self) -> &Arc<CallStats> {
        self.live.stats()
    }

    /// How many times the instance was replaced after a failure.
    pub fn restarts(&self) -> u64 {
        self.live.restarts
    }
}
