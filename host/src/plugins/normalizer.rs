//! A live normalizer plugin: one raw Massive frame in, ticks with their wire
//! payloads (and what was skipped) out.

use std::sync::Arc;

use wasmtime::component::Instance;
use wasmtime::Store;

use super::bindings::{normalize, Normalized, PluginInfo};
use super::ctx::PluginCtx;
use super::engine::{LoadedComponent, PluginEngine};
use super::error::{CallError, LoadError};
use super::instance::{Live, WorldExports};
use super::kind::PluginKind;
use super::stats::CallStats;

impl WorldExports for normalize::Guest {
    fn load(
        component: &LoadedComponent,
        store: &mut Store<PluginCtx>,
        instance: &Instance,
    ) -> wasmtime::Result<Self> {
        normalize::GuestIndices::new(&component.pre)?.load(store, instance)
    }

    fn info(&self, store: &mut Store<PluginCtx>) -> wasmtime::Result<PluginInfo> {
        self.call_info(store)
    }
}

/// A normalizer instance, long-lived: create it once, call it per frame.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// use tickstock::plugins::{embedded, Limits, NormalizerPlugin, PluginEngine, PluginKind};
/// let engine = PluginEngine::new(Limits::default(), None)?;
/// let component = engine.load(PluginKind::Normalizer, embedded::NORMALIZER)?;
/// let mut normalizer = NormalizerPlugin::new(&engine, component.into())?;
/// let out = normalizer.normalize_frame(r#"[{"ev":"T","sym":"AAPL","p":1.5,"s":10,"t":1}]"#)?;
/// assert_eq!(out.ticks.len(), 1);
/// # Ok(()) }
/// ```
pub struct NormalizerPlugin {
    live: Live<normalize::Guest>,
}

impl NormalizerPlugin {
    /// Instantiates a loaded normalizer component.
    pub fn new(engine: &PluginEngine, component: Arc<LoadedComponent>) -> Result<Self, LoadError> {
        if component.kind != PluginKind::Normalizer {
            return Err(LoadError::WrongKind {
                expected: "normalizer",
                found: component.kind.as_str(),
                export: component.kind.export_interface().to_string(),
            });
        }
        Ok(NormalizerPlugin {
            live: Live::new(engine, component)?,
        })
    }

    /// Normalizes one frame. On error the instance has been replaced and the
    /// next call is served by a fresh one.
    pub fn normalize_frame(&mut self, frame: &str) -> Result<Normalized, CallError> {
        self.live
            .call(|exports, store| exports.call_normalize_frame(store, frame))
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
