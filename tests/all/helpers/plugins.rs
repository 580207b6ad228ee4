//! Plugin engines and instances for tests, and the test-only guests.

use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use tickstock::plugins::{
    embedded, CallError, HealthPlugin, Limits, LoadedComponent, NormalizerPlugin, PluginEngine,
    PluginKind,
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

/// The misbehaving test normalizer on the strict engine.
pub fn misbehaving() -> NormalizerPlugin {
    misbehaving_on(&strict_engine())
}

/// The misbehaving test normalizer on `engine`.
pub fn misbehaving_on(engine: &PluginEngine) -> NormalizerPlugin {
    let component = load(engine, PluginKind::Normalizer, &guests::misbehave());
    NormalizerPlugin::new(engine, component).unwrap()
}

/// Runs `f` on its own thread and returns what it returns, or fails the
/// test if it has not returned within `bound` (a hang fails, not blocks).
pub fn within<T: Send + 'static>(bound: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|_| panic!("the call did not return within {bound:?}"))
}

/// Each failure comes back as an error (well within a generous bound, so a
/// hang fails the test) and the next call is served.
pub fn assert_fails_then_recovers(frame: &str, check: impl Fn(&CallError) -> bool) {
    let mut plugin = misbehaving();
    let frame = frame.to_string();
    let start = Instant::now();
    let (mut plugin, result) = within(Duration::from_secs(10), move || {
        let result = plugin.normalize_frame(&frame);
        (plugin, result)
    });
    let err = result.expect_err("the call must fail");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(check(&err), "unexpected error: {err}");
    assert_eq!(plugin.restarts(), 1);
    let out = plugin.normalize_frame("still alive").unwrap();
    assert_eq!(out.ticks[0].payload, "still alive");
}
