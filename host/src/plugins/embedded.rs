//! The default plugin components, compiled from `plugins/*` by the host's
//! `build.rs` and embedded in the binary, so a fresh clone runs with nothing
//! else installed.

/// `plugins/normalizer` built for `wasm32-wasip2`.
pub static NORMALIZER: &[u8] = include_bytes!(env!("TICKSTOCK_COMPONENT_NORMALIZER"));

/// `plugins/health` built for `wasm32-wasip2`.
pub static HEALTH: &[u8] = include_bytes!(env!("TICKSTOCK_COMPONENT_HEALTH"));

/// The embedded component of `kind`.
pub fn component(kind: super::PluginKind) -> &'static [u8] {
    match kind {
        super::PluginKind::Normalizer => NORMALIZER,
        super::PluginKind::Health => HEALTH,
    }
}
