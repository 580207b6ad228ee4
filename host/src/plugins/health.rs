//! The health world: batches of ticks in, health reports out, state
//! exportable so a later version can continue it.

use wasmtime::component::Instance;
use wasmtime::Store;

use super::bindings::{health_metrics, HealthReport, HostState, PluginInfo, Tick};
use super::conformance::check_health;
use super::ctx::PluginCtx;
use super::engine::LoadedComponent;
use super::error::CallError;
use super::instance::{Plugin, World};
use crate::contract::PluginKind;

impl World for health_metrics::Guest {
    const KIND: PluginKind = PluginKind::Health;

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

    /// A scripted session.
    fn conformance(probe: &mut Plugin<Self>) -> Result<(), Vec<String>> {
        check_health(probe)
    }

    /// The new version continues the old one's windows and totals.
    fn hand_over(old: &mut Plugin<Self>, new: &mut Plugin<Self>) -> Option<Result<(), String>> {
        let carried = match old.export_state() {
            Ok(bytes) => match new.import_state(&bytes, old.info()) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(refused)) => Err(refused),
                Err(err) => Err(format!("import_state failed: {err}")),
            },
            Err(err) => Err(format!("export_state of the old version failed: {err}")),
        };
        Some(carried)
    }
}

/// A health instance, long-lived: it holds the windows and totals.
pub type HealthPlugin = Plugin<health_metrics::Guest>;

impl Plugin<health_metrics::Guest> {
    /// Feeds a batch of ticks that arrived at `now_ms` (Unix ms).
    pub fn observe(&mut self, ticks: &[Tick], now_ms: i64) -> Result<(), CallError> {
        self.call(|exports, store| exports.call_observe(store, ticks, now_ms))
    }

    /// The health report as of `now_ms`.
    pub fn report(&mut self, now_ms: i64, host: &HostState) -> Result<HealthReport, CallError> {
        let report = self.call(|exports, store| exports.call_report(store, now_ms, host))?;
        super::limits::check_report(&report).map_err(|what| self.oversized(what))?;
        Ok(report)
    }

    /// The plugin's serialized state.
    pub fn export_state(&mut self) -> Result<Vec<u8>, CallError> {
        self.call(|exports, store| exports.call_export_state(store))
    }

    /// Loads state exported by `previous` (this or another version). The
    /// outer error is a failed call; the inner one is the plugin refusing
    /// the state (it then starts fresh).
    pub fn import_state(
        &mut self,
        state: &[u8],
        previous: &PluginInfo,
    ) -> Result<Result<(), String>, CallError> {
        self.call(|exports, store| exports.call_import_state(store, state, previous))
    }
}
