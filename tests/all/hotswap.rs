//! Operators hot-swap plugins: the admin API and CLI, validation and
//! refusals, zero-loss swaps under load, health state carried over, dead
//! letters and automatic rollback, the watched directory.

use std::time::Duration;

use tickstock::bus::Channels;
use tickstock::plugins::{embedded, PluginKind};

use crate::helpers::{
    self, active_version, guests, host_with, post, recording_simulator, sim_config, wait_until,
    TestHost, SYMBOLS, TOKEN,
};

const SECS: Duration = Duration::from_secs(30);
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_the_token() {
    let sim = recording_simulator(200.0, &SYMBOLS).await;
    let host = host_with(&sim, &helpers::prefix("auth"), None, &SYMBOLS).await;
    let url = format!("http://{}/admin/plugins", host.addr);
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        client
            .get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .get(&url)
            .header("authorization", format!("Basic {TOKEN}"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let (code, _) = post(
        &host,
        "/admin/plugins/normalizer",
        None,
        guests::normalizer_next(),
    )
    .await;
    assert_eq!(code, 401);
    assert_eq!(
        active_version(&host, PluginKind::Normalizer),
        "1.0.0",
        "an unauthenticated upload changed the plugin"
    );
    let ok = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    let kinds: Vec<&str> = body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["normalizer", "health"]);
    assert_eq!(body["plugins"][0]["active"]["version"], "1.0.0");
    assert_eq!(body["plugins"][0]["history"][0]["action"], "loaded");
    host.stop().await;

    // Without a token the API does not exist.
    let mut config = helpers::config(&helpers::prefix("noadmin"), None, 3, Duration::from_secs(1));
    config.admin_token = None;
    let host = TestHost::start(&config).await;
    let resp = reqwest::Client::new()
        .get(format!("http://{}/admin/plugins", host.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("TICKSTOCK_ADMIN_TOKEN"));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_the_old_version_keeps_serving() {
    let sim = recording_simulator(300.0, &SYMBOLS).await;
    let prefix = helpers::prefix("refuse");
    let host = host_with(&sim, &prefix, None, &SYMBOLS).await;
    let mut plugin_events = host
        .bus
        .subscribe(vec![Channels::new(prefix.clone()).plugins()], 1024);
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "junk",
            "normalizer",
            b"this is not wasm at all".to_vec(),
            "not a WebAssembly component",
        ),
        (
            "other kind",
            "normalizer",
            embedded::HEALTH.to_vec(),
            "this is a health plugin",
        ),
        (
            "other kind",
            "health",
            embedded::NORMALIZER.to_vec(),
            "this is a normalizer plugin",
        ),
        (
            "next major",
            "normalizer",
            guests::next_major(),
            "tickstock:plugins@2.0.0",
        ),
        (
            "fails conformance",
            "normalizer",
            guests::misbehave(),
            "conformance",
        ),
    ];
    for (what, kind, body, expected) in cases {
        let (code, reply) = post(&host, &format!("/admin/plugins/{kind}"), Some(TOKEN), body).await;
        assert_eq!(code, 422, "{what}: {reply}");
        let message = reply["error"].as_str().unwrap();
        assert!(message.contains(expected), "{what}: {message}");
    }
    let (code, reply) = post(&host, "/admin/plugins/normalizer", Some(TOKEN), Vec::new()).await;
    assert_eq!(code, 400, "{reply}");
    let (code, _) = post(
        &host,
        "/admin/plugins/parser",
        Some(TOKEN),
        guests::normalizer_next(),
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = post(
        &host,
        "/admin/plugins/normalizer",
        Some(TOKEN),
        vec![0u8; 33 << 20],
    )
    .await;
    assert_eq!(code, 413, "oversized uploads are refused");
    let (code, reply) = post(
        &host,
        "/admin/plugins/normalizer/rollback",
        Some(TOKEN),
        Vec::new(),
    )
    .await;
    assert_eq!(code, 409, "{reply}");

    // Nothing changed, and ticks still flow through the old version.
    assert_eq!(active_version(&host, PluginKind::Normalizer), "1.0.0");
    assert_eq!(active_version(&host, PluginKind::Health), "1.0.0");
    let before = host
        .ingest
        .pipeline
        .ticks
        .load(std::sync::atomic::Ordering::Relaxed);
    wait_until("ticks after refusals", SECS, || {
        host.ingest
            .pipeline
            .ticks
            .load(std::sync::atomic::Ordering::Relaxed)
            > before + 50
    })
    .await;
    // Every refusal was announced.
    let mut refused = 0;
    let plugin_schema = helpers::schema("plugin_event.json");
    while let Some(m) = plugin_events.try_recv() {
        let v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
        helpers::assert_schema(&plugin_schema, &v);
        if v["type"] == "plugin_refused" {
            refused += 1;
            assert!(!v["reason"].as_str().unwrap().is_empty());
        }
    }
    assert_eq!(refused, 5, "each of the five bad components was announced");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_load_deliver_every_tick_exactly_once_in_order() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("swaps").await;
    let sim = recording_simulator(2_000.0, &SYMBOLS).await;
    let host = host_with(&sim, ch.prefix(), Some(redis.url()), &SYMBOLS).await;
    wait_until("ticks flowing", SECS, || consumer.count(&ch.ticks()) > 200).await;

    let versions = [
        ("normalizer", guests::normalizer_next(), "1.1.0"),
        ("health", guests::health_next(), "1.1.0"),
        ("normalizer", embedded::NORMALIZER.to_vec(), "1.0.0"),
        ("health", embedded::HEALTH.to_vec(), "1.0.0"),
    ];
    let mut pauses = Vec::new();
    for i in 0..24 {
        let (kind, bytes, version) = &versions[i % versions.len()];
        let (code, reply) = post(
            &host,
            &format!("/admin/plugins/{kind}"),
            Some(TOKEN),
            bytes.clone(),
        )
        .await;
        assert_eq!(code, 200, "swap {i}: {reply}");
        assert_eq!(reply["installed"]["version"], *version);
        pauses.push(
            reply["installed"]["pause_us"]
                .as_u64()
                .expect("a pause in µs"),
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let got = helpers::assert_delivered_exactly_once(&sim, &consumer, &ch.ticks()).await;
    // The 1.1.0 normalizer's new field reached market:ticks without a restart.
    helpers::some_but_not_all_carry(&got, "sequence");
    // The 1.1.0 health plugin's new metric reached the health channel.
    assert!(consumer
        .on(&ch.health())
        .iter()
        .any(|h| h.json["health"].get("symbols_seen_total").is_some()));
    // Totals never went backwards across health swaps.
    let totals: Vec<u64> = consumer
        .on(&ch.health())
        .iter()
        .map(|h| h.json["health"]["total_ticks"].as_u64().unwrap())
        .collect();
    assert!(
        totals.windows(2).all(|w| w[1] >= w[0]),
        "total_ticks reset across a swap: {totals:?}"
    );
    // Every swap reported how long the hot path paused (what it costs is
    // measured by `cargo bench --bench swap`, not asserted here).
    assert_eq!(pauses.len(), 24);
    host.stop().await;
}

async fn next(sub: &mut tickstock::bus::Subscription) -> serde_json::Value {
    let m = tokio::time::timeout(SECS, sub.recv())
        .await
        .unwrap()
        .unwrap();
    serde_json::from_str::<serde_json::Value>(&m.payload).unwrap()["health"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_state_survives_a_swap() {
    let sim = recording_simulator(400.0, &SYMBOLS).await;
    let prefix = helpers::prefix("state");
    let host = host_with(&sim, &prefix, None, &SYMBOLS).await;
    let mut health = host
        .bus
        .subscribe(vec![Channels::new(prefix.clone()).health()], 1024);
    next(&mut health).await;
    next(&mut health).await;
    let before = next(&mut health).await;
    let total_before = before["total_ticks"].as_u64().unwrap();
    assert!(total_before > 500, "{before}");

    let done = host
        .manager
        .install(PluginKind::Health, guests::health_next(), "test")
        .await
        .unwrap();
    assert_eq!(done.version, "1.1.0");
    assert_eq!(done.state.as_deref(), Some("carried over"));
    let after = next(&mut health).await;
    // Totals continue (a reset instance would count about one interval's ticks).
    assert!(
        after["total_ticks"].as_u64().unwrap() > total_before,
        "before {before}\nafter {after}"
    );
    // The window was not reset: a full window's rate right after the swap.
    let (tps_before, tps_after) = (
        before["ticks_per_second"].as_f64().unwrap(),
        after["ticks_per_second"].as_f64().unwrap(),
    );
    assert!(
        tps_after > tps_before * 0.6,
        "rate {tps_before} -> {tps_after}"
    );
    assert!(
        after["peak_ticks_per_second"].as_f64().unwrap()
            >= before["peak_ticks_per_second"].as_f64().unwrap()
    );
    // The new metric is there, on the bus and on the dashboard.
    assert!(after["symbols_seen_total"].as_u64().unwrap() > 0, "{after}");
    wait_until("dashboard shows the new metric", SECS, || {
        host.dashboard.status()["health"]
            .get("symbols_seen_total")
            .is_some()
    })
    .await;
    host.stop().await;
}

/// A normalizer version that fails on the frames of one symbol (and passes
/// the conformance check): installed under load, its failures are dead
/// letters with the error, every other frame keeps flowing, it is rolled
/// back by itself, the fault shows in `/metrics` and on the plugins
/// channel, and a good version installs afterwards.
async fn a_faulty_normalizer_is_dead_lettered_and_rolled_back(
    test: &str,
    guest: Vec<u8>,
    label: &str,
    marker: &str,
    error_says: &str,
) {
    let (redis, ch, consumer) = helpers::redis_and_consumer(test).await;
    let sim = recording_simulator(1_000.0, &SYMBOLS).await;
    let host = host_with(&sim, ch.prefix(), Some(redis.url()), &SYMBOLS).await;
    wait_until("ticks flowing", SECS, || consumer.count(&ch.ticks()) > 100).await;

    helpers::install(&host, "normalizer", guest).await;
    let installed_at = consumer.count(&ch.ticks());
    wait_until("automatic rollback", SECS, || {
        active_version(&host, PluginKind::Normalizer) == "1.0.0"
    })
    .await;
    wait_until("rollback announced", SECS, || {
        consumer
            .on(&ch.plugins())
            .iter()
            .any(|e| e.json["type"] == "plugin_rolled_back" && e.json["automatic"] == true)
    })
    .await;
    // Every failed frame reaches the dead-letter channel (the last ones
    // may still be on their way when the rollback is announced).
    let errors = || {
        host.ingest
            .pipeline
            .plugin_errors
            .load(std::sync::atomic::Ordering::Relaxed) as usize
    };
    wait_until("every failed frame dead-lettered", SECS, || {
        consumer.count(&ch.deadletter()) == errors()
    })
    .await;
    let letters = consumer.on(&ch.deadletter());
    assert!(letters.len() >= 3, "{} dead letters", letters.len());
    let letter_schema = helpers::schema("deadletter.json");
    for l in &letters {
        helpers::assert_schema(&letter_schema, &l.json);
        assert_eq!(l.json["plugin"], label);
        let error = l.json["error"].as_str().unwrap();
        assert!(error.contains(error_says), "{}", l.json);
        assert!(l.json["frame"].as_str().unwrap().contains(marker));
    }
    // The other frames kept flowing, during and after.
    wait_until("ticks after rollback", SECS, || {
        consumer.count(&ch.ticks()) > installed_at + 200
    })
    .await;
    let history = host.registry.history(PluginKind::Normalizer);
    let actions: Vec<&str> = history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(actions, vec!["loaded", "installed", "auto_rolled_back"]);
    assert!(history[2].reason.as_deref().unwrap().contains("failed"));
    let errors = errors() as u64;
    assert_eq!(
        errors as usize,
        letters.len(),
        "every failed frame was dead-lettered and counted"
    );
    let metrics = helpers::scrape(host.addr).await;
    assert_eq!(
        helpers::sample(&metrics, "tickstock_normalizer_errors_total") as u64,
        errors
    );
    let auto = [("kind", "normalizer"), ("automatic", "true")];
    assert_eq!(
        helpers::sample_with(&metrics, "tickstock_plugin_rollbacks_total", &auto),
        1.0
    );
    // Every kind of plugins event seen here matches its schema.
    let plugin_schema = helpers::schema("plugin_event.json");
    let events = consumer.on(&ch.plugins());
    for e in &events {
        helpers::assert_schema(&plugin_schema, &e.json);
    }
    for kind in ["plugin_status", "plugin_installed", "plugin_rolled_back"] {
        assert!(
            events.iter().any(|e| e.json["type"] == kind),
            "no {kind} event"
        );
    }
    // A good version installs afterwards.
    helpers::install(&host, "normalizer", guests::normalizer_next()).await;
    assert_eq!(active_version(&host, PluginKind::Normalizer), "1.1.0");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_version_dead_letters_its_frames_and_is_rolled_back() {
    a_faulty_normalizer_is_dead_lettered_and_rolled_back(
        "trap",
        guests::normalizer_trap(),
        "massive-stocks@1.0.1-trap",
        "TRAPME",
        "TRAPME",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_sleeps_on_one_symbol_traps_instead_of_hanging_and_is_rolled_back() {
    a_faulty_normalizer_is_dead_lettered_and_rolled_back(
        "sleep",
        guests::normalizer_sleep(),
        "massive-stocks@1.0.1-sleep",
        "SLEEPME",
        "may not sleep or wait",
    )
    .await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_directory_reads_regular_files_only_with_one_naming_rule() {
    let sim = recording_simulator(200.0, &SYMBOLS).await;
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let faulty = outside.path().join("faulty.wasm");
    std::fs::write(&faulty, guests::health_faults()).unwrap();
    // At start-up: a normalizer under a versioned name, and health files
    // that are no regular files: a FIFO (reading it would block) and a
    // symlink out of the directory.
    std::fs::write(
        dir.path().join("normalizer-v2.wasm"),
        guests::normalizer_next(),
    )
    .unwrap();
    mkfifo(&dir.path().join("health-fifo.wasm"));
    std::os::unix::fs::symlink(&faulty, dir.path().join("health-z.wasm")).unwrap();
    let mut config = sim_config(&sim, &helpers::prefix("dirrule"), None, &SYMBOLS);
    config.plugins.dir = Some(dir.path().to_path_buf());
    let host = tokio::time::timeout(SECS, TestHost::start(&config))
        .await
        .expect("start-up must not block on a FIFO");
    assert_eq!(active_version(&host, PluginKind::Normalizer), "1.1.0");
    assert_eq!(active_version(&host, PluginKind::Health), "1.0.0");

    // While watching: more of the same, then a good file after them in
    // name order, which the watcher only reaches if it skipped them.
    mkfifo(&dir.path().join("health-a-fifo.wasm"));
    std::os::unix::fs::symlink(&faulty, dir.path().join("health-b-link.wasm")).unwrap();
    std::fs::write(dir.path().join("health-c.wasm"), guests::health_next()).unwrap();
    wait_until("the regular health file is live", SECS, || {
        active_version(&host, PluginKind::Health) == "1.1.0"
    })
    .await;
    let versions: Vec<String> = host
        .registry
        .history(PluginKind::Health)
        .into_iter()
        .map(|h| h.version)
        .collect();
    assert_eq!(versions, ["1.0.0", "1.1.0"], "a symlink was followed");
    host.stop().await;
}

#[cfg(unix)]
fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_dropped_in_the_plugin_directory_is_installed() {
    let sim = recording_simulator(200.0, &SYMBOLS).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = sim_config(&sim, &helpers::prefix("dir"), None, &SYMBOLS);
    config.plugins.dir = Some(dir.path().to_path_buf());
    let host = TestHost::start(&config).await;
    // Written under another name, then renamed: how deployments drop files.
    let tmp = dir.path().join("incoming.tmp");
    std::fs::write(&tmp, guests::normalizer_next()).unwrap();
    std::fs::rename(&tmp, dir.path().join("normalizer.wasm")).unwrap();
    wait_until("the directory's normalizer is live", SECS, || {
        active_version(&host, PluginKind::Normalizer) == "1.1.0"
    })
    .await;
    // A bad file is looked at, refused (and the refusal announced); the
    // running version stays.
    let mut events = host.bus.subscribe(vec![host.bus.channels().plugins()], 64);
    std::fs::write(dir.path().join("health.wasm"), b"garbage").unwrap();
    let refused = tokio::time::timeout(SECS, async {
        loop {
            let m = events.recv().await.expect("the bus closed");
            let v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
            if v["type"] == "plugin_refused" {
                return v;
            }
        }
    })
    .await
    .expect("the watcher never refused the bad file");
    assert_eq!(refused["kind"], "health");
    assert!(
        refused["source"].as_str().unwrap().ends_with("health.wasm"),
        "{refused}"
    );
    assert!(refused["reason"]
        .as_str()
        .unwrap()
        .contains("not a WebAssembly component"));
    assert_eq!(active_version(&host, PluginKind::Health), "1.0.0");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_being_written_is_installed_only_once_it_settles() {
    let sim = recording_simulator(200.0, &SYMBOLS).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = sim_config(&sim, &helpers::prefix("settle"), None, &SYMBOLS);
    config.plugins.dir = Some(dir.path().to_path_buf());
    let host = TestHost::start(&config).await;
    let mut events = host.bus.subscribe(vec![host.bus.channels().plugins()], 64);
    // Written in place, slowly (a copy over a slow link): the size changes
    // between every two polls for about three seconds. Reading it before it
    // settles would refuse a truncated component.
    let bytes = guests::normalizer_next();
    let path = dir.path().join("normalizer.wasm");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut file = std::fs::File::create(path).unwrap();
        let chunk = bytes.len().div_ceil(12);
        for part in bytes.chunks(chunk) {
            file.write_all(part).unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    let first = tokio::time::timeout(SECS, async {
        loop {
            let m = events.recv().await.expect("the bus closed");
            let v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
            if v["type"] == "plugin_installed" || v["type"] == "plugin_refused" {
                return v;
            }
        }
    })
    .await
    .expect("the watcher never acted on the file");
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        first["type"], "plugin_installed",
        "a half-written file was read: {first}"
    );
    assert_eq!(first["kind"], "normalizer");
    assert_eq!(active_version(&host, PluginKind::Normalizer), "1.1.0");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_installs_and_rolls_back() {
    let sim = recording_simulator(200.0, &SYMBOLS).await;
    let host = host_with(&sim, &helpers::prefix("cli"), None, &SYMBOLS).await;
    let dir = tempfile::tempdir().unwrap();
    let next = dir.path().join("next.wasm");
    std::fs::write(&next, guests::normalizer_next()).unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"junk").unwrap();
    let url = format!("http://{}", host.addr);
    let cli = move |args: Vec<String>, token: &str| {
        let out = helpers::tickstock_bin()
            .env("TICKSTOCK_ADMIN_TOKEN", token)
            .arg("plugins")
            .args(args)
            .arg("--admin-url")
            .arg(&url)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let run = |args: &[&str], token: &'static str| {
        let cli = cli.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || cli(args, token))
                .await
                .unwrap()
        }
    };
    let (ok, out) = run(&["install", "normalizer", next.to_str().unwrap()], TOKEN).await;
    assert!(ok, "{out}");
    assert!(out.contains("1.1.0") && out.contains("was 1.0.0"), "{out}");
    let (ok, out) = run(&["list"], TOKEN).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("normalizer") && out.contains("1.1.0") && out.contains("installed"),
        "{out}"
    );
    let (ok, out) = run(&["rollback", "normalizer"], TOKEN).await;
    assert!(ok, "{out}");
    assert_eq!(active_version(&host, PluginKind::Normalizer), "1.0.0");
    let (ok, out) = run(&["install", "normalizer", junk.to_str().unwrap()], TOKEN).await;
    assert!(!ok);
    assert!(out.contains("not a WebAssembly component"), "{out}");
    let (ok, out) = run(&["list"], "wrong-token").await;
    assert!(!ok);
    assert!(out.contains("401"), "{out}");
    assert!(!out.contains("wrong-token"), "the token leaked: {out}");
    host.stop().await;
}
