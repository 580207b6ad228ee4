//! The normalizer world: one raw Massive frame in, ticks with their wire
//! payloads (and what was skipped) out.

use wasmtime::component::Instance;
use wasmtime::Store;

use super::bindings::{normalize, Normalized, PluginInfo};
use super::conformance::{check_normalizer, Strictness};
use super::ctx::PluginCtx;
use super::engine::LoadedComponent;
use super::error::CallError;
use super::instance::{Plugin, World};
use crate::contract::PluginKind;

impl World for normalize::Guest {
    const KIND: PluginKind = PluginKind::Normalizer;

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

    /// The golden frames; a new version may add payload fields.
    fn conformance(probe: &mut Plugin<Self>) -> Result<(), Vec<String>> {
        check_normalizer(probe, Strictness::Superset).map(|_| ())
    }

    fn warm_up(live: &mut Plugin<Self>) {
        // A failure here replaced the instance; the next frame shows it.
        let _ = live.warm_up();
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
pub type NormalizerPlugin = Plugin<normalize::Guest>;

impl Plugin<normalize::Guest> {
    /// Normalizes one frame. On error the instance has been replaced and the
    /// next call is served by a fresh one.
    pub fn normalize_frame(&mut self, frame: &str) -> Result<Normalized, CallError> {
        let out = self.call(|exports, store| exports.call_normalize_frame(store, frame))?;
        super::limits::check_normalized(&out).map_err(|what| self.oversized(what))?;
        Ok(out)
    }

    /// Runs one representative frame through a fresh instance, so its first
    /// real frame does not pay for first-touch memory and lazy set-up (the
    /// hot-swap path calls this before going live).
    pub fn warm_up(&mut self) -> Result<(), CallError> {
        const FRAME: &str = r#"[{"ev":"status","status":"success","message":"warm-up"},{"ev":"T","sym":"WARM","x":4,"i":"1","z":3,"p":100.25,"s":100,"c":[12],"t":1700000000000,"q":1},{"ev":"AM","sym":"WARM","v":10,"c":1.5,"e":1700000060000}]"#;
        self.normalize_frame(FRAME).map(|_| ())
    }
}
