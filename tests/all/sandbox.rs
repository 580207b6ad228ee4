//! The plugin sandbox, call by call: no component can hang, starve, bloat or
//! outlive its thread. Each test runs a hostile guest through the real
//! runtime and checks that the call fails with a clear error, quickly, and
//! that the plugin serves again afterwards. (The same faults inside a
//! running host are in `hotswap.rs`.)

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tickstock::plugins::runner::{Inbox, PluginThread, RunnerEvent, RunnerOptions};
use tickstock::plugins::wasi::WAIT_REFUSED;
use tickstock::plugins::{
    CallError, HealthPlugin, Limits, LoadError, NormalizerPlugin, PluginEngine, PluginInfo,
    PluginKind, Tick,
};

use crate::helpers::{
    self, active_version, assert_fails_then_recovers, guests, host_with, misbehaving,
    misbehaving_on, post, recording_simulator, sim_config, TestHost, SYMBOLS, TOKEN,
};

/// A generous bound: every fault here must end far sooner.
const BOUND: Duration = Duration::from_secs(10);

fn is_wait_refused(e: &CallError) -> bool {
    matches!(e, CallError::Trap { .. }) && e.to_string().contains("may not sleep or wait")
}

fn tick(symbol: &str) -> Tick {
    Tick {
        symbol: symbol.to_string(),
        price: 1.0,
        size: 1,
        timestamp_ms: 1_700_000_000_000,
        sequence: None,
        kind: None,
        exchange: None,
    }
}

fn faulty_health() -> HealthPlugin {
    let engine = helpers::strict_engine();
    let component = helpers::load(&engine, PluginKind::Health, &guests::health_faults());
    HealthPlugin::new(&engine, component).unwrap()
}

/// Runs `call` on `plugin` (on its own thread, so a hang fails the test)
/// and checks it fails with a refused wait; returns the plugin.
fn assert_wait_refused<T: std::fmt::Debug + Send + 'static>(
    plugin: HealthPlugin,
    call: impl FnOnce(&mut HealthPlugin) -> Result<T, CallError> + Send + 'static,
) -> HealthPlugin {
    let start = Instant::now();
    let (plugin, result) = helpers::within(BOUND, move || {
        let mut plugin = plugin;
        let result = call(&mut plugin);
        (plugin, result)
    });
    let err = result.expect_err("the call must fail");
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    assert!(is_wait_refused(&err), "unexpected error: {err}");
    assert!(err.to_string().contains(WAIT_REFUSED), "{err}");
    plugin
}

#[test]
fn a_sleeping_normalizer_traps_at_once_and_serves_again() {
    assert_fails_then_recovers("sleep", is_wait_refused);
}

#[test]
fn a_health_plugin_that_sleeps_in_any_call_traps() {
    let plugin = faulty_health();
    let mut plugin = assert_wait_refused(plugin, |p| p.observe(&[tick("SLEEP")], 1));
    // Served again by a fresh instance.
    plugin.observe(&[tick("AAA")], 2).unwrap();

    plugin.observe(&[tick("REPORT_SLEEP")], 3).unwrap();
    let host = tickstock::plugins::HostState {
        window_ms: 1_000,
        subscribed_symbols: 1,
        feed_connected: true,
        bus_connected: true,
        dropped_since_last_report: 0,
        issues: Vec::new(),
    };
    let report_host = host.clone();
    let mut plugin = assert_wait_refused(plugin, move |p| p.report(4, &report_host));
    plugin.report(5, &host).unwrap();

    plugin.observe(&[tick("EXPORT_SLEEP")], 6).unwrap();
    let mut plugin = assert_wait_refused(plugin, |p| p.export_state());
    plugin.export_state().unwrap();
}

#[test]
fn a_loop_in_import_state_is_stopped() {
    let engine = helpers::strict_engine();
    let component = helpers::load(&engine, PluginKind::Health, &guests::health_loop_import());
    let mut plugin = HealthPlugin::new(&engine, component).unwrap();
    let previous = PluginInfo {
        name: "stream-health".into(),
        version: "1.0.0".into(),
    };
    let start = Instant::now();
    let err = plugin.import_state(b"{}", &previous).unwrap_err();
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    assert!(matches!(err, CallError::Deadline { .. }), "{err}");
}

#[test]
fn a_constructor_that_loops_is_stopped_when_the_instance_is_made() {
    // A Rust component runs its static constructors on its first entry,
    // `info`, which the host calls when it makes the instance: the deadline
    // covers that as it covers every other call (and instantiation itself).
    let engine = helpers::strict_engine();
    let component = helpers::load(&engine, PluginKind::Normalizer, &guests::loop_at_start());
    let start = Instant::now();
    let err = NormalizerPlugin::new(&engine, component)
        .err()
        .expect("making the instance must fail");
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    assert!(
        matches!(err, LoadError::Info(CallError::Deadline { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("normalizer plugin exceeded its 20 ms deadline"),
        "{err}"
    );
}

#[test]
fn a_loop_is_stopped_even_when_its_thread_gets_little_cpu() {
    // More CPU-burning threads than cores: the plugin's thread gets a
    // fraction of a core, which once kept a per-window CPU check from ever
    // firing. The CPU budget counts across windows and the wall-clock cap
    // fires whatever the CPU clock says.
    let stop = Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            })
        })
        .collect();
    let result = std::panic::catch_unwind(|| {
        assert_fails_then_recovers("loop", |e| matches!(e, CallError::Deadline { .. }))
    });
    stop.store(true, Ordering::Relaxed);
    for b in burners {
        b.join().unwrap();
    }
    result.unwrap();
}

/// An engine whose limits the faults below stay within: they test what
/// the host does with what a call returns or logs.
fn roomy_engine() -> PluginEngine {
    PluginEngine::new(
        Limits {
            deadline: Duration::from_secs(2),
            memory_bytes: 256 << 20,
        },
        None,
    )
    .unwrap()
}

#[test]
fn huge_results_are_refused_and_counted() {
    let mut plugin = misbehaving_on(&roomy_engine());
    for frame in ["huge-output", "huge-payload"] {
        let err = plugin.normalize_frame(frame).unwrap_err();
        assert!(matches!(err, CallError::Oversized { .. }), "{frame}: {err}");
    }
    let stats = plugin.stats();
    assert_eq!(stats.oversized.load(Ordering::Relaxed), 2);
    assert_eq!(stats.errors.load(Ordering::Relaxed), 2);
    assert_eq!(plugin.normalize_frame("ok").unwrap().ticks.len(), 1);
}

/// A component whose packed result points outside its text: refused with a
/// clear error (never a panic or garbage published), counted, and the
/// instance serves the next frame.
#[test]
fn packed_results_with_bad_spans_are_refused_and_counted() {
    let engine = roomy_engine();
    let component = helpers::load(&engine, PluginKind::Normalizer, &guests::misbehave_packed());
    let mut plugin = NormalizerPlugin::new(&engine, component).unwrap();
    assert!(plugin.is_packed());
    // Its good answers come through the packed export intact.
    let ok = plugin.normalize_frame("first Ü").unwrap();
    assert_eq!(
        (
            ok.ticks[0].tick.symbol.as_str(),
            ok.ticks[0].payload.as_str()
        ),
        ("ECHO", "first Ü")
    );
    for (frame, span) in [
        ("span-outside", "payload span 4+1000000"),
        ("span-cuts-char", "symbol span 0+1"),
        ("span-overflow", "symbol span 4294967295+4294967295"),
    ] {
        let err = plugin.normalize_frame(frame).unwrap_err();
        assert!(matches!(err, CallError::BadResult { .. }), "{frame}: {err}");
        assert_eq!(err.kind(), "bad_result");
        let text = err.to_string();
        assert!(
            text.starts_with("misbehave@0.0.1 returned a malformed result: tick 0: ")
                && text.contains(span),
            "{frame}: {text}"
        );
    }
    // Too many packed ticks is an oversized result, as in the plain form.
    let err = plugin.normalize_frame("huge-output").unwrap_err();
    assert!(matches!(err, CallError::Oversized { .. }), "{err}");
    let stats = plugin.stats();
    assert_eq!(stats.errors.load(Ordering::Relaxed), 4);
    assert_eq!(stats.oversized.load(Ordering::Relaxed), 1);
    // A refused result leaves the instance: it would answer the same.
    assert_eq!(plugin.restarts(), 0);
    assert_eq!(
        plugin.normalize_frame("still serving").unwrap().ticks[0].payload,
        "still serving"
    );
}

#[test]
fn a_log_flood_is_cut_and_counted() {
    let mut plugin = misbehaving_on(&roomy_engine());
    let start = Instant::now();
    plugin.normalize_frame("log-flood").unwrap();
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    assert_eq!(
        plugin.stats().logs_dropped.load(Ordering::Relaxed),
        100_000 - 20
    );
}

#[test]
fn sockets_are_refused() {
    let mut plugin = misbehaving();
    let out = plugin.normalize_frame("probe").unwrap();
    let probe: serde_json::Value = serde_json::from_str(&out.ticks[0].payload).unwrap();
    assert_eq!(probe["tcp_connect"], false, "a socket connected: {probe}");
}

type NormalizeThread = PluginThread<tickstock::plugins::NormalizerExports>;
type Results = Arc<Mutex<Vec<Result<String, String>>>>;

/// A normalizer thread whose results go to a list, watched with
/// `stuck_after`, on an engine whose deadline stops a loop only after
/// `deadline` (so the watchdog acts first).
fn watched_thread(
    deadline: Duration,
    options: RunnerOptions,
) -> (NormalizeThread, Inbox<String>, Results) {
    let engine = PluginEngine::new(
        Limits {
            deadline,
            memory_bytes: 16 << 20,
        },
        None,
    )
    .unwrap();
    let component = helpers::load(&engine, PluginKind::Normalizer, &guests::misbehave());
    let plugin = NormalizerPlugin::new(&engine, component).unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    let seen = results.clone();
    let (thread, inbox) =
        PluginThread::spawn("normalize", plugin, 16, options, move |p, frame: String| {
            let out = p
                .normalize_frame(&frame)
                .map(|n| n.ticks[0].payload.clone())
                .map_err(|e| e.to_string());
            seen.lock().unwrap().push(out);
            ControlFlow::Continue(())
        })
        .unwrap();
    (thread, inbox, results)
}

/// Whether `frame` was served successfully.
fn served(results: &Results, frame: &str) -> bool {
    results
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.as_deref() == Ok(frame))
}

fn events() -> (RunnerOptions, Arc<Mutex<Vec<RunnerEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let options = RunnerOptions {
        stuck_after: Some(Duration::from_millis(100)),
        max_stuck: 3,
        on_event: Some(Arc::new(move |e| sink.lock().unwrap().push(e))),
        ..RunnerOptions::default()
    };
    (options, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_call_is_abandoned_and_a_fresh_thread_serves_on() {
    // The loop is stopped by its deadline only after ~0.6-3 s: long after
    // the watchdog (100 ms) gave up on it.
    let (options, events) = events();
    let (thread, inbox, results) = watched_thread(Duration::from_millis(300), options);
    inbox.send("loop".into()).await.unwrap();
    inbox.send("after".into()).await.unwrap();
    helpers::wait_until("the next frame is served", BOUND, || {
        served(&results, "after")
    })
    .await;
    assert_eq!(thread.stats().abandoned.load(Ordering::Relaxed), 1);
    {
        let events = events.lock().unwrap();
        assert!(
            matches!(&events[..], [RunnerEvent::Abandoned { stuck_now: 1, plugin, .. }] if plugin == "misbehave@0.0.1"),
            "{events:?}"
        );
    }
    // The stuck call comes back at last: its result says it was
    // abandoned, and its thread serves nothing more.
    helpers::wait_until("the stuck call came back", BOUND, || {
        thread.stats().stuck_now.load(Ordering::Relaxed) == 0
    })
    .await;
    assert!(results
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.as_ref().is_err_and(|e| e.contains("abandoned"))));
    inbox.send("later".into()).await.unwrap();
    helpers::wait_until("served by the fresh thread", BOUND, || {
        served(&results, "later")
    })
    .await;
    assert_eq!(results.lock().unwrap().len(), 3, "each frame served once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_stuck_threads_is_fatal() {
    let (mut options, events) = events();
    options.max_stuck = 0;
    let (_thread, inbox, _results) = watched_thread(Duration::from_millis(300), options);
    inbox.send("loop".into()).await.unwrap();
    helpers::wait_until("a fatal event", BOUND, || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, RunnerEvent::Fatal { reason, .. } if reason.contains("stuck")))
    })
    .await;
}

// The same faults inside a running host, driven through the admin API.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_plugin_that_sleeps_on_live_ticks_is_rolled_back_and_health_keeps_flowing() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("health-sleep").await;
    let universe = ["AAPL", "MSFT", "SLEEP"];
    let sim = recording_simulator(300.0, &universe).await;
    let host = host_with(&sim, ch.prefix(), Some(redis.url()), &universe).await;
    helpers::wait_until("ticks and health", BOUND, || {
        consumer.count(&ch.ticks()) > 50 && consumer.count(&ch.health()) >= 1
    })
    .await;
    // It passes the conformance check (which sends no SLEEP tick).
    helpers::install(&host, "health", guests::health_faults()).await;
    helpers::wait_until("automatic rollback of the health plugin", BOUND * 3, || {
        active_version(&host, PluginKind::Health) == "1.0.0"
    })
    .await;
    let history = host.registry.history(PluginKind::Health);
    assert_eq!(history.last().unwrap().action, "auto_rolled_back");
    // One health event per interval goes on, from the good version.
    let before = consumer.count(&ch.health());
    helpers::wait_until("health events after the rollback", BOUND, || {
        consumer.count(&ch.health()) >= before + 2
    })
    .await;
    let last = consumer.on(&ch.health()).last().unwrap().json.clone();
    assert!(
        last["health"]["active_symbols"].as_u64().unwrap() >= 2,
        "{last}"
    );
    let metrics = helpers::scrape(host.addr).await;
    assert!(helpers::sample(&metrics, "tickstock_health_plugin_errors_total") >= 3.0);
    let auto = [("kind", "health"), ("automatic", "true")];
    assert_eq!(
        helpers::sample_with(&metrics, "tickstock_plugin_rollbacks_total", &auto),
        1.0
    );
    helpers::install(&host, "health", guests::health_next()).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_sleeps_in_the_conformance_check_is_refused_and_installs_go_on() {
    let sim = recording_simulator(200.0, &SYMBOLS).await;
    let host = host_with(&sim, &helpers::prefix("check-sleep"), None, &SYMBOLS).await;
    let start = Instant::now();
    let (code, reply) = post(
        &host,
        "/admin/plugins/health",
        Some(TOKEN),
        guests::health_sleep_in_check(),
    )
    .await;
    assert_eq!(code, 422, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("may not sleep or wait"),
        "{reply}"
    );
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    // The install lock was not held: the next install goes through.
    helpers::install(&host, "health", guests::health_next()).await;
    assert_eq!(active_version(&host, PluginKind::Health), "1.1.0");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_whose_client_goes_away_still_completes_and_is_recorded() {
    use tokio::io::AsyncWriteExt;
    let sim = recording_simulator(200.0, &SYMBOLS).await;
    let mut config = sim_config(&sim, &helpers::prefix("gone"), None, &SYMBOLS);
    // No compiled cache: the install compiles, which keeps it in flight
    // for a while after the request arrived.
    config.cache_dir = None;
    let host = TestHost::start(&config).await;
    let body = guests::health_next();
    let mut socket = tokio::net::TcpStream::connect(host.addr).await.unwrap();
    let head = format!(
        "POST /admin/plugins/health HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/wasm\r\ncontent-length: {}\r\n\r\n",
        host.addr,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body).await.unwrap();
    socket.flush().await.unwrap();
    // The client goes away without waiting for the answer, once the
    // server has had time to read the request and start the install.
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(socket);
    helpers::wait_until("the install went live", BOUND, || {
        active_version(&host, PluginKind::Health) == "1.1.0"
    })
    .await;
    let described = host.manager.describe();
    let stacks = described["plugins"].as_array().unwrap();
    let health = stacks.iter().find(|p| p["kind"] == "health").unwrap();
    assert_eq!(
        health["rollback_stack"].as_array().unwrap().len(),
        2,
        "{health}"
    );
    assert_eq!(health["history"].as_array().unwrap().len(), 2, "{health}");
    host.stop().await;
}

#[test]
fn host_resources_a_plugin_holds_are_capped() {
    let mut plugin = misbehaving_on(&roomy_engine());
    let err = plugin.normalize_frame("pollables").unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }), "{err}");
    assert!(err.to_string().contains("resource table"), "{err}");
    assert_eq!(plugin.normalize_frame("ok").unwrap().ticks.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_plugin_thread_degrades_the_next_health_event() {
    let sim = recording_simulator(200.0, &SYMBOLS).await;
    let host = host_with(&sim, &helpers::prefix("incident"), None, &SYMBOLS).await;
    let mut health = host.bus.subscribe(vec![host.bus.channels().health()], 64);
    // What the runner's watchdog reports through the role context.
    let what = "normalizer plugin massive-stocks@1.0.0: a call did not return within 1.0s";
    host.registry
        .note_abandoned(PluginKind::Normalizer, what.to_string());
    let event = tokio::time::timeout(BOUND, async {
        loop {
            let message = health.recv().await.expect("the bus closed");
            let event: serde_json::Value = serde_json::from_str(&message.payload).unwrap();
            if event["health"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains(what))
            {
                return event;
            }
        }
    })
    .await
    .expect("no health event named the abandoned thread");
    assert_eq!(event["health"]["status"], "degraded", "{event}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_is_bounded_by_the_bytes_it_holds() {
    let engine = helpers::strict_engine();
    let component = helpers::load(&engine, PluginKind::Normalizer, &guests::misbehave());
    let plugin = NormalizerPlugin::new(&engine, component).unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let options = RunnerOptions {
        queue_bytes: Some(100),
        ..RunnerOptions::default()
    };
    let (_thread, inbox) =
        PluginThread::spawn("normalize", plugin, 16, options, move |_, _: String| {
            // Hold every item until the test lets it go.
            let _ = gate.lock().unwrap().recv();
            ControlFlow::Continue(())
        })
        .unwrap();
    inbox.try_send_sized("first".into(), 10).unwrap();
    helpers::wait_until("the first item is taken", BOUND, || {
        inbox.queued_bytes() == 0
    })
    .await;
    inbox.try_send_sized("a".into(), 60).unwrap();
    assert!(
        matches!(
            inbox.try_send_sized("b".into(), 60),
            Err(tickstock::plugins::runner::Refused::Full(_))
        ),
        "120 bytes fit a 100-byte inbox"
    );
    inbox.try_send_sized("c".into(), 40).unwrap();
    assert_eq!(inbox.queued_bytes(), 100);
    release.send(()).unwrap();
    helpers::wait_until("the bytes come back as items are taken", BOUND, || {
        inbox.queued_bytes() == 40
    })
    .await;
    drop(release);
}

#[test]
fn the_memory_budget_counts_every_memory_of_an_instance() {
    // Two memories of ~40 MiB each: under a 64 MiB cap per memory, but not
    // under one 64 MiB budget for the instance.
    let engine = helpers::engine();
    let component = helpers::load(&engine, PluginKind::Normalizer, &guests::budget());
    let mut plugin = NormalizerPlugin::new(&engine, component).unwrap();
    assert_eq!(plugin.label(), "budget@0.0.1");
    let err = plugin.normalize_frame("m").unwrap_err();
    assert!(matches!(err, CallError::MemoryLimit { .. }), "{err}");
    assert!(plugin.normalize_frame("ok").unwrap().ticks.is_empty());
}

#[test]
fn a_table_that_grows_without_end_hits_the_budget() {
    // The budget, not the deadline, must stop it: a deadline far longer
    // than the ~20 grows a 16 MiB budget allows (CI once hit the default
    // 50 ms deadline first, on a loaded machine, growing towards 64 MiB).
    let engine = PluginEngine::new(
        Limits {
            deadline: Duration::from_secs(5),
            memory_bytes: 16 << 20,
        },
        None,
    )
    .unwrap();
    let component = helpers::load(&engine, PluginKind::Normalizer, &guests::budget());
    let mut plugin = NormalizerPlugin::new(&engine, component).unwrap();
    let start = Instant::now();
    let err = plugin.normalize_frame("t").unwrap_err();
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    assert!(matches!(err, CallError::MemoryLimit { .. }), "{err}");
    assert!(plugin.normalize_frame("ok").unwrap().ticks.is_empty());
}

#[test]
fn a_plugin_may_print_to_stderr_without_end_and_a_panic_is_still_quoted() {
    let mut plugin = misbehaving_on(&roomy_engine());
    for _ in 0..3 {
        assert_eq!(
            plugin.normalize_frame("stderr-flood").unwrap().ticks.len(),
            1
        );
    }
    let err = plugin.normalize_frame("trap").unwrap_err();
    assert!(err.to_string().contains("asked to trap"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_plugin_whose_report_fails_gives_error_events_then_is_rolled_back() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("report-fails").await;
    // Ticks of REPORT_SLEEP arm the faulty version's report to sleep.
    let universe = ["AAPL", "MSFT", "REPORT_SLEEP"];
    let sim = recording_simulator(300.0, &universe).await;
    let host = host_with(&sim, ch.prefix(), Some(redis.url()), &universe).await;
    helpers::wait_until("health flowing", BOUND, || {
        consumer.count(&ch.health()) >= 1
    })
    .await;
    helpers::install(&host, "health", guests::health_faults()).await;
    // Its reports fail: one error event per interval, the required
    // metrics at zero, the reason says why.
    helpers::wait_until("an error health event", BOUND, || {
        consumer.on(&ch.health()).iter().any(|h| {
            let health = &h.json["health"];
            health["status"] == "error"
                && health["reason"].as_str().is_some_and(|r| {
                    r.contains("health plugin failed") && r.contains("may not sleep")
                })
                && health["active_symbols"] == 0
                && health["ticks_per_second"] == 0
        })
    })
    .await;
    // Three failures: rolled back, and healthy again.
    helpers::wait_until("rolled back", BOUND * 3, || {
        active_version(&host, PluginKind::Health) == "1.0.0"
    })
    .await;
    consumer
        .wait_for_new(&ch.health(), "healthy again", BOUND, |h| {
            h["health"]["status"] == "healthy"
        })
        .await;
    host.stop().await;
}
