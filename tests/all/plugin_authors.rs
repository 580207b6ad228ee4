//! Plugin authors: `tickstock plugin new` scaffolds that build outside the
//! repository and pass `plugin test` untouched, a changed template reaching
//! Redis through a hot swap, the Python example end to end, and a harness
//! that fails when it should.

use std::time::Duration;

use tickstock::plugins::embedded;

use crate::helpers::{self, author, TOKEN};

const SECS: Duration = Duration::from_secs(60);

fn passed(report: &serde_json::Value, checks: &[&str]) {
    for check in checks {
        assert_eq!(
            author::verdict(report, check),
            "pass",
            "{check}: {report:#}"
        );
    }
}

#[test]
fn rust_and_python_scaffolds_build_and_pass_plugin_test_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let normalizer = author::cargo_build(
        &author::scaffold(dir.path(), "normalizer", "rust", "scaffold-normalizer"),
        "scaffold-normalizer",
    );
    let health = author::cargo_build(
        &author::scaffold(dir.path(), "health", "rust", "scaffold-health"),
        "scaffold-health",
    );
    let py = author::scaffold(dir.path(), "health", "python", "py-health");
    let python = author::componentize(&py, &py.join("wit"), &py.join("py-health.wasm"));

    let (ok, report) = author::plugin_test(&normalizer, &[], &cache);
    assert!(ok, "{report:#}");
    assert_eq!(report["plugin"], "scaffold-normalizer 0.1.0");
    passed(&report, &["conformance", "golden", "fuzz", "determinism"]);
    // Untouched, it publishes exactly what the default normalizer does.
    let vs = author::check(&report, "vs default")["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(
        vs.starts_with("payloads against massive-stocks 1.0.0: 0 of"),
        "{vs}"
    );

    let (ok, report) = author::plugin_test(&health, &[], &cache);
    assert!(ok, "{report:#}");
    assert_eq!(report["plugin"], "scaffold-health 0.1.0");
    passed(&report, &["conformance", "fuzz", "determinism", "state"]);

    let (ok, report) = author::plugin_test(&python, &[], &cache);
    assert!(ok, "{report:#}");
    assert_eq!(report["kind"], "health");
    assert_eq!(report["plugin"], "py-health 1.0.0");
    passed(&report, &["conformance", "fuzz", "determinism", "state"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_added_to_the_rust_template_reaches_redis_through_a_hot_swap() {
    let dir = tempfile::tempdir().unwrap();
    let project = author::scaffold(dir.path(), "health", "rust", "metric-health");
    let state = project.join("src/state.rs");
    let source = std::fs::read_to_string(&state).unwrap();
    let anchor = "float(\"peak_ticks_per_second\", self.peak_tps),";
    assert!(
        source.contains(anchor),
        "the template changed: update this test"
    );
    std::fs::write(
        &state,
        source.replace(
            anchor,
            &format!("{anchor}\n            int(\"author_metric\", 42),"),
        ),
    )
    .unwrap();
    let wasm = tokio::task::spawn_blocking(move || author::cargo_build(&project, "metric-health"))
        .await
        .unwrap();

    let helpers::LoadedHost {
        redis: _redis,
        ch,
        consumer,
        sim: _sim,
        host,
    } = helpers::loaded_host("author-metric", 200.0, &helpers::SYMBOLS[..4]).await;

    let reply = helpers::install(&host, "health", std::fs::read(&wasm).unwrap()).await;
    assert_eq!(reply["installed"]["name"], "metric-health");
    assert_eq!(reply["installed"]["version"], "0.1.0");
    assert_eq!(reply["installed"]["state"], "carried over");
    consumer
        .wait_for_new(&ch.health(), "the author's metric", SECS, |h| {
            h["health"]["author_metric"] == 42
        })
        .await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_installs_without_blocking_and_its_metric_reaches_redis_and_the_status_api(
) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    let wasm = tokio::task::spawn_blocking(move || author::python_example(&out))
        .await
        .unwrap();
    let cache = dir.path().join("cache");

    let (redis, ch, consumer) = helpers::redis_and_consumer("python-health").await;
    let sim = helpers::recording_simulator(200.0, &helpers::SYMBOLS[..4]).await;
    let mut config =
        helpers::sim_config(&sim, ch.prefix(), Some(redis.url()), &helpers::SYMBOLS[..4]);
    config.cache_dir = Some(cache.clone());
    let host = helpers::TestHost::start(&config).await;
    helpers::wait_until("ticks flowing", SECS, || consumer.count(&ch.ticks()) > 20).await;

    // The operator's CLI: an 18 MB component compiles for a while; it says
    // so, and meanwhile the admin API answers and ticks keep flowing.
    let mut cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_tickstock"))
        .args([
            "plugins",
            "--admin-url",
            &format!("http://{}", host.addr),
            "install",
            "health",
        ])
        .arg(&wasm)
        .env("TICKSTOCK_ADMIN_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ticks_before = consumer.count(&ch.ticks());
    let list = reqwest::Client::new()
        .get(format!("http://{}/admin/plugins", host.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    helpers::wait_until("ticks during the install", SECS, || {
        consumer.count(&ch.ticks()) > ticks_before + 50
    })
    .await;
    assert!(
        cli.try_wait().unwrap().is_none(),
        "the install finished before the admin API and the ticks were checked: nothing was shown"
    );
    let done = tokio::time::timeout(Duration::from_secs(300), cli.wait_with_output())
        .await
        .expect("the install finishes")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr),
    );
    assert!(done.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("still working"),
        "no progress shown: {stderr}"
    );
    assert!(
        stdout.contains("health is now python-health 1.0.0"),
        "{stdout}"
    );
    assert!(stdout.contains("(compiled)"), "{stdout}");
    // Its state format is the default plugin's: the totals carried over.
    assert!(stdout.contains("state carried over"), "{stdout}");

    consumer
        .wait_for_new(&ch.health(), "the Python plugin's metric", SECS, |h| {
            h["health"]["busiest_symbol"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .await;
    let status = helpers::status(&host).await;
    assert!(status["health"]["busiest_symbol"].is_string(), "{status:#}");
    host.stop().await;

    // A second host with the same cache takes the compiled code from disk.
    let again = helpers::TestHost::start(&config).await;
    let reply = helpers::install(&again, "health", std::fs::read(&wasm).unwrap()).await;
    assert_eq!(reply["installed"]["loaded_from"], "cache", "{reply}");
    again.stop().await;

    // And the author's harness passes it, from the same cache.
    let (ok, report) = tokio::task::spawn_blocking(move || author::plugin_test(&wasm, &[], &cache))
        .await
        .unwrap();
    assert!(ok, "{report:#}");
    let vs = author::check(&report, "vs default")["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(vs.contains("added: busiest_symbol"), "{vs}");
}

#[test]
fn plugin_test_fails_with_a_reason_on_bad_components_and_on_a_wrong_golden_vector() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let load_failure = |file: &std::path::Path, args: &[&str]| {
        let (ok, report) = author::plugin_test(file, args, &cache);
        assert!(!ok, "{report:#}");
        assert_eq!(author::verdict(&report, "load"), "fail", "{report:#}");
        author::check(&report, "load")["summary"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(
        load_failure(&write("random.wasm", &random), &[]).contains("not a WebAssembly component")
    );
    let core = write("core.wasm", b"\0asm\x01\0\0\0");
    assert!(load_failure(&core, &[]).contains("core WebAssembly module"));
    let health = write("health.wasm", embedded::HEALTH);
    assert!(load_failure(&health, &["--kind", "normalizer"]).contains("this is a health plugin"),);

    // The checks past the gate fail too: a normalizer that traps on a
    // frame the author supplies fails `fuzz` (which runs the author's
    // frames first), saying which frame...
    let frames = write(
        "frames.txt",
        br#"[{"ev":"T","sym":"TRAPME","p":1.5,"s":1,"t":1}]
[{"ev":"T","sym":"REPORT_SLEEP","p":1.5,"s":1,"t":1}]
"#,
    );
    let frames_arg = frames.to_str().unwrap();
    let trap = write("trap.wasm", &helpers::guests::normalizer_trap());
    let (ok, report) = author::plugin_test(&trap, &["--frames", frames_arg], &cache);
    assert!(!ok, "{report:#}");
    assert_eq!(author::verdict(&report, "conformance"), "pass");
    assert_eq!(author::verdict(&report, "fuzz"), "fail", "{report:#}");
    assert!(author::check(&report, "fuzz")["details"]
        .to_string()
        .contains("TRAPME"));
    // ...and a health plugin whose report starts sleeping after the
    // author's ticks fails `determinism` and `state`.
    let faults = write("faults.wasm", &helpers::guests::health_faults());
    let (ok, report) = author::plugin_test(&faults, &["--frames", frames_arg], &cache);
    assert!(!ok, "{report:#}");
    assert_eq!(
        author::verdict(&report, "determinism"),
        "fail",
        "{report:#}"
    );
    assert_eq!(author::verdict(&report, "state"), "fail", "{report:#}");
    assert!(
        author::check(&report, "determinism")["details"]
            .to_string()
            .contains("may not sleep"),
        "{report:#}"
    );

    // The default normalizer passes with the contract's golden frames...
    let normalizer = write("normalizer.wasm", embedded::NORMALIZER);
    let (ok, report) = author::plugin_test(&normalizer, &[], &cache);
    assert!(ok, "{report:#}");
    // ...and fails with one whose expected price is wrong, saying where.
    let golden =
        std::fs::read_to_string(author::repo_root().join("wit/conformance/normalizer-1.json"))
            .unwrap();
    assert!(golden.contains(r#"\"price\":114.125"#));
    let wrong = write(
        "wrong.json",
        golden
            .replacen(r#"\"price\":114.125"#, r#"\"price\":114.5"#, 1)
            .as_bytes(),
    );
    let (ok, report) =
        author::plugin_test(&normalizer, &["--golden", wrong.to_str().unwrap()], &cache);
    assert!(!ok, "{report:#}");
    assert_eq!(author::verdict(&report, "golden"), "fail");
    assert_eq!(author::verdict(&report, "conformance"), "pass");
    let details = author::check(&report, "golden")["details"].to_string();
    assert!(
        details.contains(r#"field \"price\" is 114.125, expected 114.5"#),
        "{details}"
    );
    assert!(
        details.contains("- want") && details.contains("+ got"),
        "{details}"
    );
}

/// `TICKSTOCK_WASM_PERF_MAP` makes wasmtime write a `perf` map naming the
/// plugin's JIT code (also when the code comes from the compiled cache),
/// and without it no map is written.
#[test]
fn the_perf_map_variable_names_the_plugins_jit_code_for_perf() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("normalizer.wasm");
    std::fs::write(&file, embedded::NORMALIZER).unwrap();
    let cache = dir.path().join("cache");
    let run = |perf_map: bool| {
        let mut cmd = helpers::tickstock_bin();
        cmd.args(["plugin", "test", "--json", "--cache-dir"])
            .arg(&cache)
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if perf_map {
            cmd.env(tickstock::plugins::PERF_MAP_ENV, "1");
        } else {
            cmd.env_remove(tickstock::plugins::PERF_MAP_ENV);
        }
        let mut child = cmd.spawn().unwrap();
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        assert!(child.wait().unwrap().success());
        let text = std::fs::read_to_string(&map).ok();
        let _ = std::fs::remove_file(&map);
        text
    };
    assert_eq!(run(false), None, "a map was written without the variable");
    // First with a cold cache (compiled here), then from the cache.
    for _ in 0..2 {
        let map = run(true).expect("no perf map with the variable set");
        let functions = map.lines().filter(|l| l.contains("wasm[")).count();
        assert!(functions > 100, "{functions} functions in the map");
    }
}
