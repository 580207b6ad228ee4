//! The health world: batches of ticks in, health reports out, state
//! exportable so a later version can continue it.

use wasmtime::component::Instance;
use wasmtime::Store;

use super::bindings::health_packed::ObservedTick;
use super::bindings::{health_metrics, health_packed, HealthReport, HostState, PluginInfo, Tick};
use super::conformance::check_health;
use super::ctx::PluginCtx;
use super::engine::LoadedComponent;
use super::error::CallError;
use super::instance::{Plugin, World};
use crate::contract::PluginKind;

/// The name of the optional packed export (contract 1.1.0).
pub const PACKED_EXPORT: &str = "tickstock:plugins/health-packed@1.1.0";

/// A health plugin's exports: `health-metrics`, and `health-packed` when the
/// component offers it (built against 1.1.0 or later); the host then feeds
/// batches through the packed one.
pub struct HealthExports {
    plain: health_metrics::Guest,
    packed: Option<health_packed::Guest>,
}

impl World for HealthExports {
    const KIND: PluginKind = PluginKind::Health;

    fn load(
        component: &LoadedComponent,
        store: &mut Store<PluginCtx>,
        instance: &Instance,
    ) -> wasmtime::Result<Self> {
        let plain =
            health_metrics::GuestIndices::new(&component.pre)?.load(&mut *store, instance)?;
        let packed = component.optional_export(PACKED_EXPORT, |pre| {
            health_packed::GuestIndices::new(pre)?.load(store, instance)
        })?;
        Ok(HealthExports { plain, packed })
    }

    fn info(&self, store: &mut Store<PluginCtx>) -> wasmtime::Result<PluginInfo> {
        self.plain.call_info(store)
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
pub type HealthPlugin = Plugin<HealthExports>;

impl Plugin<HealthExports> {
    /// Feeds a batch of ticks that arrived at `now_ms` (Unix ms).
    pub fn observe(&mut self, ticks: &[Tick], now_ms: i64) -> Result<(), CallError> {
        if self.exports().packed.is_none() {
            return self.call(|exports, store| exports.plain.call_observe(store, ticks, now_ms));
        }
        let (symbols, observed) = pack(ticks);
        self.call(|exports, store| match &exports.packed {
            Some(packed) => packed.call_observe_packed(store, &symbols, &observed, now_ms),
            None => Err(wasmtime::Error::msg("the packed export went away")),
        })
    }

    /// Whether this instance is fed through `health-packed`.
    pub fn is_packed(&self) -> bool {
        self.exports().packed.is_some()
    }

    /// The health report as of `now_ms`.
    pub fn report(&mut self, now_ms: i64, host: &HostState) -> Result<HealthReport, CallError> {
        let report = self.call(|exports, store| exports.plain.call_report(store, now_ms, host))?;
        super::limits::check_report(&report).map_err(|what| self.oversized(what))?;
        Ok(report)
    }

    /// The plugin's serialized state.
    pub fn export_state(&mut self) -> Result<Vec<u8>, CallError> {
        self.call(|exports, store| exports.plain.call_export_state(store))
    }

    /// Loads state exported by `previous` (this or another version). The
    /// outer error is a failed call; the inner one is the plugin refusing
    /// the state (it then starts fresh).
    pub fn import_state(
        &mut self,
        state: &[u8],
        previous: &PluginInfo,
    ) -> Result<Result<(), String>, CallError> {
        self.call(|exports, store| exports.plain.call_import_state(store, state, previous))
    }
}

/// A batch in the packed form: the symbols end to end, and per tick its
/// symbol's length and the numbers.
fn pack(ticks: &[Tick]) -> (String, Vec<ObservedTick>) {
    let mut symbols = String::with_capacity(ticks.iter().map(|t| t.symbol.len()).sum());
    let observed = ticks
        .iter()
        .map(|t| {
            symbols.push_str(&t.symbol);
            ObservedTick {
                // Symbols are bounded (64 bytes) by the normalizer's limits.
                symbol_len: u32::try_from(t.symbol.len()).unwrap_or(u32::MAX),
                price: t.price,
                size: t.size,
                timestamp_ms: t.timestamp_ms,
            }
        })
        .collect();
    (symbols, observed)
}
