//! Helpers shared by every test module.

use std::sync::Arc;
use std::time::Duration;

use tickstock::plugins::{
    embedded, HealthPlugin, Limits, LoadedComponent, NormalizerPlugin, PluginEngine, PluginKind,
};

/// Test-only guest components built by the host's build.rs.
pub mod guests {
    /// A normalizer that loops / allocates / traps on request.
    pub fn misbehave() -> Vec<u8> {
        std::fs::read(env!("TICKSTOCK_COMPONENT_MISBEHAVE")).unwrap()
    }
    /// A normalizer built against tickstock:plugins@2.0.0.
    pub fn next_major() -> Vec<u8> {
        std::fs::read(env!("TICKSTOCK_COMPONENT_NEXT_MAJOR")).unwrap()
    }
}

/// An engine with default limits and no disk cache.
pub fn engine() -> PluginEngine {
    PluginEngine::new(Limits::default(), None).unwrap()
}

/// An engine with a short deadline and a small memory cap.
pub fn strict_engine() -> PluginEngine {
    PluginEngine::new(
        Limits {
            deadline: Duration::from_millis(20),
            memory_bytes: 16 << 20,
        },
        None,
    )
    .unwrap()
}

/// Loads bytes as `kind` on `engine`, panicking with the refusal.
pub fn load(engine: &PluginEngine, kind: PluginKind, bytes: &[u8]) -> Arc<LoadedComponent> {
    Arc::new(
        engine
            .load(kind, bytes)
            .unwrap_or_else(|e| panic!("load failed: {e}")),
    )
}

/// The embedded normalizer, instantiated.
pub fn normalizer(engine: &PluginEngine) -> NormalizerPlugin {
    NormalizerPlugin::new(
        engine,
        load(engine, PluginKind::Normalizer, embedded::NORMALIZER),
    )
    .unwrap()
}

/// The embedded health plugin, instantiated.
pub fn health(engine: &PluginEngine) -> HealthPlugin {
    HealthPlugin::new(engine, load(engine, PluginKind::Health, embedded::HEALTH)).unwrap()
}
