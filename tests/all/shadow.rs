//! Shadow runs: a candidate beside the live version on the same input,
//! reported on while the live path delivers exactly what it did before;
//! stopped, timed out and promoted through the admin API and the CLI.

use std::time::Duration;

use serde_json::Value;
use tickstock::roles::Host;

use crate::helpers::{self, guests, TOKEN};

const SECS: Duration = Duration::from_secs(30);

/// `METHOD /admin/plugins/{kind}/shadow{suffix}`: status and JSON answer.
async fn shadow(
    host: &Host,
    method: &str,
    kind: &str,
    suffix: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let url = format!("http://{}/admin/plugins/{kind}/shadow{suffix}", host.addr);
    let client = reqwest::Client::new();
    let request = match method {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url).body(body),
    };
    let response = request.bearer_auth(TOKEN).send().await.unwrap();
    let code = response.status().as_u16();
    (code, response.json().await.unwrap_or(Value::Null))
}

/// `tickstock plugins --admin-url URL ARGS`, which must succeed; its stdout.
async fn plugins_cli(admin_url: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tickstock"))
        .args(["plugins", "--admin-url", admin_url])
        .args(args)
        .env("TICKSTOCK_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn report(host: &Host, kind: &str) -> Value {
    let (code, body) = shadow(host, "GET", kind, "", Vec::new()).await;
    assert_eq!(code, 200, "{body}");
    body["shadow"].clone()
}

/// Polls the report until `cond` holds.
async fn report_until(host: &Host, kind: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + SECS;
    loop {
        let r = report(host, kind).await;
        if cond(&r) {
            return r;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {r:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_with_a_new_field_is_reported_while_redis_gets_exactly_the_live_payloads() {
    let helpers::LoadedHost {
        redis: _redis,
        ch,
        consumer,
        sim,
        host,
    } = helpers::loaded_host("shadow-field", 2_000.0, &helpers::SYMBOLS[..10]).await;

    let (code, started) = shadow(&host, "POST", "normalizer", "", guests::normalizer_next()).await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started["shadow"]["candidate"]["version"], "1.1.0");
    assert_eq!(started["shadow"]["live"]["version"], "1.0.0");
    // One shadow per kind.
    let (code, busy) = shadow(&host, "POST", "normalizer", "", guests::normalizer_next()).await;
    assert_eq!(code, 409, "{busy}");

    let r = report_until(&host, "normalizer", "frames compared", |r| {
        r["inputs_compared"].as_u64() > Some(300)
    })
    .await;
    assert_eq!(
        r["fields"]["added"]["sequence"]["count"]
            .as_u64()
            .map(|n| n > 0),
        Some(true),
        "{r:#}"
    );
    assert!(
        r["fields"]["removed"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "{r:#}"
    );
    let (same, differ) = (
        r["identical"].as_u64().unwrap(),
        r["different"].as_u64().unwrap(),
    );
    assert!(
        differ as f64 >= 0.95 * (same + differ) as f64,
        "{same} identical, {differ} different"
    );
    assert!(
        r["candidate_errors"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "{r:#}"
    );
    assert!(
        r["candidate_latency"]["calls"].as_u64() > Some(300),
        "{r:#}"
    );

    let (code, stopped) = shadow(&host, "DELETE", "normalizer", "", Vec::new()).await;
    assert_eq!(code, 200, "{stopped}");
    assert_eq!(stopped["shadow"]["end_reason"], "stopped");
    assert!(stopped["shadow"]["ended_at"].is_string());
    let (code, _) = shadow(&host, "DELETE", "normalizer", "", Vec::new()).await;
    assert_eq!(code, 404, "a second stop finds nothing running");
    // The last report stays readable.
    assert_eq!(report(&host, "normalizer").await["end_reason"], "stopped");

    // Redis got the live version's payloads, every tick once, in order.
    let got = helpers::assert_delivered_exactly_once(&sim, &consumer, &ch.ticks()).await;
    assert!(
        got.iter().all(|t| t.json.get("sequence").is_none()),
        "a candidate payload reached Redis"
    );
    // The reports went out on the plugins channel, valid against its schema.
    let schema = helpers::schema("plugin_event.json");
    let shadows: Vec<_> = consumer
        .on(&ch.plugins())
        .into_iter()
        .filter(|m| m.json["type"] == "plugin_shadow")
        .collect();
    assert!(shadows.len() >= 2, "started and ended: {}", shadows.len());
    for m in &shadows {
        helpers::assert_schema(&schema, &m.json);
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_traps_or_spins_is_counted_and_the_live_path_delivers_every_tick() {
    let symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "TRAPME", "SPINME"];
    let helpers::LoadedHost {
        redis: _redis,
        ch,
        consumer,
        sim,
        host,
    } = helpers::loaded_host("shadow-faults", 300.0, &symbols).await;

    let (code, started) = shadow(&host, "POST", "normalizer", "", guests::normalizer_trap()).await;
    assert_eq!(code, 200, "{started}");
    let r = report_until(&host, "normalizer", "traps and deadline hits", |r| {
        r["candidate_errors"]["trap"].as_u64() > Some(0)
            && r["candidate_errors"]["deadline"].as_u64() > Some(0)
    })
    .await;
    assert!(r["error_examples"].to_string().contains("TRAPME"), "{r:#}");
    assert_eq!(r["live_errors"], 0, "{r:#}");

    let got = helpers::assert_delivered_exactly_once(&sim, &consumer, &ch.ticks()).await;
    assert!(got.iter().any(|t| t.json["symbol"] == "TRAPME"));
    assert!(got.iter().any(|t| t.json["symbol"] == "SPINME"));
    assert_eq!(
        consumer.count(&ch.deadletter()),
        0,
        "a candidate failure reached the live path"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_installs_the_candidate_without_loss_and_health_shadows_report_metrics() {
    let helpers::LoadedHost {
        redis: _redis,
        ch,
        consumer,
        sim,
        host,
    } = helpers::loaded_host("shadow-promote", 1_000.0, &helpers::SYMBOLS[..10]).await;

    // A health candidate, through the CLI, for a fixed time.
    let dir = tempfile::tempdir().unwrap();
    let next = dir.path().join("health-next.wasm");
    std::fs::write(&next, guests::health_next()).unwrap();
    let admin_url = format!("http://{}", host.addr);
    let stdout = plugins_cli(
        &admin_url,
        &["shadow", "health", next.to_str().unwrap(), "--for", "3s"],
    )
    .await;
    assert!(
        stdout.contains("\"end_reason\": \"time is up\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("symbols_seen_total"),
        "the new metric is reported: {stdout}"
    );
    let r = report(&host, "health").await;
    assert!(
        r["fields"]["added"]["symbols_seen_total"].is_object(),
        "{r:#}"
    );
    assert!(r["inputs_compared"].as_u64() > Some(2), "{r:#}");

    // A normalizer candidate, promoted: its payloads from then on, nothing lost.
    let (code, _) = shadow(&host, "POST", "normalizer", "", guests::normalizer_next()).await;
    assert_eq!(code, 200);
    report_until(&host, "normalizer", "frames compared", |r| {
        r["inputs_compared"].as_u64() > Some(50)
    })
    .await;
    let stdout = plugins_cli(&admin_url, &["promote", "normalizer"]).await;
    assert!(
        stdout.contains("normalizer is now massive-stocks 1.1.0"),
        "{stdout}"
    );
    assert_eq!(report(&host, "normalizer").await["end_reason"], "promoted");
    assert_eq!(
        helpers::active_version(&host, tickstock::plugins::PluginKind::Normalizer),
        "1.1.0"
    );
    let (code, _) = shadow(&host, "POST", "normalizer", "/promote", Vec::new()).await;
    assert_eq!(code, 404, "nothing left to promote");
    helpers::wait_until("a payload of the promoted version", SECS, || {
        consumer
            .on(&ch.ticks())
            .iter()
            .any(|t| t.json.get("sequence").is_some())
    })
    .await;

    let got = helpers::assert_delivered_exactly_once(&sim, &consumer, &ch.ticks()).await;
    helpers::some_but_not_all_carry(&got, "sequence");
    host.stop().await;
}
