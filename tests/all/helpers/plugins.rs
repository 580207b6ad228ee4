//! Plugin engines and instances for tests, and the test-only guests.

use std::sync::Arc;
use std::time::Duration;

use tickstock::plugins::{
    embedded, HealthPlugin, Limits, LoadedComponent, NormalizerPlugin, PluginEngine, PluginKind,
};

/// Test-only guest components (built by `tests/artifacts`).
pub use tickstock_test_artifacts as guests;

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
