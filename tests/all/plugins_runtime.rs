//! Runtime safety: deadlines, memory cap, traps, instance replacement,
//! contract checks, the compiled cache and the sandbox.

use std::time::Duration;

use tickstock::plugins::{
    embedded, CacheOutcome, CallError, Limits, LoadError, NormalizerPlugin, PluginEngine,
    PluginKind,
};

use crate::helpers::{self, assert_fails_then_recovers, guests, misbehaving};

#[test]
fn a_looping_plugin_is_stopped_by_the_deadline() {
    assert_fails_then_recovers("loop", |e| {
        matches!(
            e,
            CallError::Deadline {
                deadline_ms: 20,
                ..
            }
        ) && e.to_string().contains("deadline")
    });
}

#[test]
fn an_allocating_plugin_hits_the_memory_cap() {
    assert_fails_then_recovers(
        "alloc",
        |e| matches!(e, CallError::MemoryLimit { limit_bytes, wanted_bytes, .. } if *limit_bytes == 16 << 20 && wanted_bytes > limit_bytes),
    );
}

#[test]
fn a_trapping_plugin_reports_its_panic() {
    assert_fails_then_recovers("trap", |e| {
        matches!(e, CallError::Trap { .. }) && e.to_string().contains("asked to trap")
    });
}

#[test]
fn repeated_failures_never_stop_the_service() {
    let mut plugin = misbehaving();
    for round in 0..5 {
        for frame in ["loop", "trap", "alloc"] {
            assert!(
                plugin.normalize_frame(frame).is_err(),
                "round {round} {frame}"
            );
        }
        assert_eq!(plugin.normalize_frame("ok").unwrap().ticks.len(), 1);
    }
    assert_eq!(plugin.restarts(), 15);
}

#[test]
fn guest_logs_reach_the_host() {
    /// Collects what the host logs on this thread.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let mut plugin = misbehaving();
    let out = tracing::subscriber::with_default(subscriber, || plugin.normalize_frame("log"));
    assert_eq!(out.unwrap().ticks.len(), 1);
    let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains("hello from the guest"))
        .unwrap_or_else(|| panic!("the guest's line was not logged: {logged}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("misbehave@0.0.1"),
        "the line names the plugin: {line}"
    );
}

#[test]
fn the_sandbox_grants_nothing() {
    let mut plugin = misbehaving();
    let out = plugin.normalize_frame("probe").unwrap();
    let probe: serde_json::Value = serde_json::from_str(&out.ticks[0].payload).unwrap();
    assert_eq!(probe["env"], 0, "environment leaked: {probe}");
    assert_eq!(probe["args"], 0, "arguments leaked: {probe}");
    assert_eq!(probe["root_readable"], false, "filesystem visible: {probe}");
    assert_eq!(
        probe["clock_secs"], 0,
        "the wall clock is readable: {probe}"
    );
}

#[test]
fn a_future_major_version_is_refused_by_name() {
    let engine = helpers::engine();
    let err = engine
        .load(PluginKind::Normalizer, &guests::next_major())
        .err()
        .unwrap();
    assert!(
        matches!(err, LoadError::IncompatibleVersion { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("tickstock:plugins@2.0.0"), "{msg}");
    assert!(msg.contains(">=1.0.0, <2.0.0"), "{msg}");
}

#[test]
fn a_component_of_the_other_world_is_refused() {
    let engine = helpers::engine();
    let err = engine
        .load(PluginKind::Normalizer, embedded::HEALTH)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            LoadError::WrongKind {
                expected: "normalizer",
                found: "health",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("this is a health plugin"), "{err}");
    let err = engine
        .load(PluginKind::Health, embedded::NORMALIZER)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("this is a normalizer plugin"),
        "{err}"
    );
}

#[test]
fn junk_and_core_modules_are_refused_clearly() {
    let engine = helpers::engine();
    let err = engine
        .load(PluginKind::Normalizer, b"definitely not wasm")
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not a WebAssembly component"),
        "{err}"
    );
    // A valid core module (the smallest one) is not a component.
    let err = engine
        .load(PluginKind::Normalizer, b"\0asm\x01\0\0\0")
        .err()
        .unwrap();
    assert!(err.to_string().contains("core WebAssembly module"), "{err}");
    // A component header followed by garbage fails to compile, with a reason.
    let mut truncated = embedded::NORMALIZER[..embedded::NORMALIZER.len() / 2].to_vec();
    truncated.extend_from_slice(b"garbage");
    let err = engine
        .load(PluginKind::Normalizer, &truncated)
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Compile(_)), "{err}");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let first = PluginEngine::new(Limits::default(), Some(dir.path())).unwrap();
    let loaded = first
        .load(PluginKind::Normalizer, embedded::NORMALIZER)
        .unwrap();
    assert_eq!(loaded.cache, CacheOutcome::Miss);
    let entry = first.cache().unwrap().entry(&loaded.sha256);
    assert!(!entry.exists(), "nothing is cached before it is accepted");
    first.keep(&loaded);
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
    assert!(entry.exists());

    // A new engine (a restart) loads the compiled form instead of compiling.
    let second = PluginEngine::new(Limits::default(), Some(dir.path())).unwrap();
    let cached = second
        .load(PluginKind::Normalizer, embedded::NORMALIZER)
        .unwrap();
    assert_eq!(cached.cache, CacheOutcome::Hit);
    let mut plugin = NormalizerPlugin::new(&second, cached.into()).unwrap();
    let out = plugin
        .normalize_frame(r#"[{"ev":"T","sym":"A","p":1.0,"t":1}]"#)
        .unwrap();
    assert_eq!(out.ticks.len(), 1);

    // A corrupt entry is discarded and the component recompiled.
    std::fs::write(&entry, b"corrupt").unwrap();
    let third = PluginEngine::new(Limits::default(), Some(dir.path())).unwrap();
    let recompiled = third
        .load(PluginKind::Normalizer, embedded::NORMALIZER)
        .unwrap();
    assert_eq!(recompiled.cache, CacheOutcome::Miss);
}

#[test]
fn refused_components_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let engine = PluginEngine::new(Limits::default(), Some(dir.path())).unwrap();
    // Compiles, then is refused: the wrong kind.
    let err = engine
        .load(PluginKind::Health, embedded::NORMALIZER)
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::WrongKind { .. }), "{err}");
    let cached = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .count();
    assert_eq!(cached, 0, "a refused component left a compiled entry");
}

#[cfg(unix)]
#[test]
fn a_cache_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let engine = PluginEngine::new(Limits::default(), Some(&shared)).unwrap();
    assert!(
        engine.cache().is_none(),
        "a world-writable cache was trusted"
    );
    // The host still works: it compiles.
    let loaded = engine
        .load(PluginKind::Normalizer, embedded::NORMALIZER)
        .unwrap();
    assert_eq!(loaded.cache, CacheOutcome::Disabled);
    engine.keep(&loaded);
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);

    // A directory it creates itself is private.
    let fresh = dir.path().join("fresh");
    let engine = PluginEngine::new(Limits::default(), Some(&fresh)).unwrap();
    assert!(engine.cache().is_some());
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn the_cache_evicts_the_least_recently_used_and_cleans_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    // A temporary file a crashed writer left an hour ago.
    let leftover = dir.path().join("abc-0000.tmp4242");
    std::fs::write(&leftover, b"half").unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .append(true)
        .open(&leftover)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let engine = PluginEngine::new(Limits::default(), Some(dir.path())).unwrap();
    assert!(!leftover.exists(), "a stale temporary file was left");

    let normalizer = engine
        .load(PluginKind::Normalizer, embedded::NORMALIZER)
        .unwrap();
    let health = engine.load(PluginKind::Health, embedded::HEALTH).unwrap();
    engine.keep(&normalizer);
    engine.keep(&health);
    let cache = engine.cache().unwrap();
    let (old, new) = (cache.entry(&normalizer.sha256), cache.entry(&health.sha256));
    // The normalizer's entry was used longest ago.
    std::fs::File::options()
        .append(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let keep_one = std::fs::metadata(&new).unwrap().len();
    cache.evict(keep_one);
    assert!(!old.exists(), "the least recently used entry stayed");
    assert!(new.exists(), "the recently used entry was evicted");
}

#[test]
fn the_plugin_reports_its_name_and_versions() {
    let engine = helpers::engine();
    let plugin = helpers::normalizer(&engine);
    assert_eq!(plugin.info().name, "massive-stocks");
    assert_eq!(plugin.info().version, "1.0.0");
    assert_eq!(plugin.component().wit_version, "1.1.0");
    assert_eq!(plugin.label(), "massive-stocks@1.0.0");
    let health = helpers::health(&engine);
    assert_eq!(health.label(), "stream-health@1.0.0");
}

#[test]
fn an_import_outside_wasi_and_the_contract_is_refused_by_name() {
    let engine = helpers::engine();
    let err = engine
        .load(PluginKind::Normalizer, &guests::odd_import())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::UnsupportedImport(_)), "{err}");
    assert!(
        err.to_string().contains("acme:evil/backdoor@1.0.0"),
        "{err}"
    );
}

/// The frames the contract-version tests compare on: the golden set, a
/// frame of 100 trades and a broken one.
fn comparison_frames() -> Vec<String> {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../../wit/conformance/normalizer-1.json")).unwrap();
    let mut frames: Vec<String> = golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| case["frame"].as_str().unwrap().to_string())
        .collect();
    assert!(frames.len() > 5);
    let trades: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"ev":"T","sym":"S{i}","p":{}.25,"s":{i},"t":{},"q":{i},"x":4}}"#,
                100 + i,
                1_700_000_000_000i64 + i
            )
        })
        .collect();
    frames.push(format!("[{}]", trades.join(",")));
    frames.push(
        r#"[{"ev":"T","sym":"A","p":"x","t":1},{"ev":"T","sym":"B","p":1.5,"t":2},7]"#.into(),
    );
    frames
}

#[test]
fn a_1_0_0_component_still_loads_and_runs_through_the_plain_interface() {
    let engine = helpers::engine();
    let loaded = engine
        .load(PluginKind::Normalizer, &guests::contract_1_0())
        .unwrap();
    assert_eq!(loaded.wit_version, "1.0.0");
    let mut old = NormalizerPlugin::new(&engine, loaded.into()).unwrap();
    assert!(!old.is_packed(), "a 1.0.0 component has no packed export");
    // The bundled normalizer (1.1.0 contract) goes through the packed
    // export; both run the same parser, so every result is the same.
    let mut new = helpers::normalizer(&engine);
    assert!(
        new.is_packed(),
        "the bundled normalizer offers the packed export"
    );
    for frame in comparison_frames() {
        let a = old.normalize_frame(&frame).unwrap();
        let b = new.normalize_frame(&frame).unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{frame}");
    }
    assert_eq!(
        old.normalize_frame(&comparison_frames()[comparison_frames().len() - 2])
            .unwrap()
            .ticks
            .len(),
        100
    );
}

#[test]
fn the_bundled_health_plugin_is_fed_packed_batches() {
    let engine = helpers::engine();
    let mut health = helpers::health(&engine);
    assert!(health.is_packed());
    let mut normalizer = helpers::normalizer(&engine);
    let frames = comparison_frames();
    let ticks: Vec<_> = normalizer
        .normalize_frame(&frames[frames.len() - 2])
        .unwrap()
        .ticks
        .into_iter()
        .map(|t| t.tick)
        .collect();
    let now = 1_700_000_000_000;
    health.observe(&ticks, now).unwrap();
    health.observe(&ticks[..10], now + 500).unwrap();
    let report = health
        .report(
            now + 1_000,
            &tickstock::plugins::HostState {
                window_ms: 2_000,
                subscribed_symbols: 100,
                feed_connected: true,
                bus_connected: true,
                dropped_since_last_report: 0,
                issues: vec![],
            },
        )
        .unwrap();
    let metric = |name: &str| {
        report
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| format!("{:?}", m.value))
            .unwrap_or_else(|| panic!("no {name} in {:?}", report.metrics))
    };
    // 110 ticks over 100 distinct symbols reached the guest intact.
    assert_eq!(metric("active_symbols"), "MetricValue::Integer(100)");
    assert_eq!(metric("total_ticks"), "MetricValue::Integer(110)");
}
