//! Hosts with the admin API on, fed by their own recording simulator: what
//! the hot-swap and sandbox tests drive.

use std::time::Duration;

use tickstock::config::Config;
use tickstock::plugins::PluginKind;
use tickstock::roles::Host;
use tickstock::secret::Secret;
use tickstock::simulator::{Simulator, SimulatorConfig, SimulatorStats};

use super::TestHost;

/// The admin token of these hosts.
pub const TOKEN: &str = "s3cret-admin-token";

/// A configuration fed by `sim` (a recording simulator) for `symbols`,
/// with the admin API on.
pub fn sim_config(
    sim: &Simulator,
    prefix: &str,
    redis: Option<String>,
    symbols: &[&str],
) -> Config {
    let mut config: Config = super::config(prefix, redis, 1, Duration::from_millis(1000));
    config.api_key = Some(Secret::new("key"));
    config.massive_url = sim.url();
    config.admin_token = Some(Secret::new(TOKEN));
    config.subscription.symbols =
        tickstock::config::Symbols::List(symbols.iter().map(|s| s.to_string()).collect());
    config
}

/// A host fed by `sim`, with the admin API on.
pub async fn host_with(
    sim: &Simulator,
    prefix: &str,
    redis: Option<String>,
    symbols: &[&str],
) -> TestHost {
    let config = sim_config(sim, prefix, redis, symbols);
    TestHost::start(&config).await
}

/// A simulator that records every trade it sends, at `rate` trades/s.
pub async fn recording_simulator(rate: f64, universe: &[&str]) -> Simulator {
    super::simulator(SimulatorConfig {
        rate,
        batch: 10,
        universe: universe.iter().map(|s| s.to_string()).collect(),
        record: true,
        seed: 5,
        ..Default::default()
    })
    .await
}

/// The symbols the hot-swap tests subscribe to (TRAPME and SLEEPME make
/// the test-only trapping and sleeping normalizers fail).
pub const SYMBOLS: [&str; 13] = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AVGO", "JPM", "V", "TRAPME", "XOM",
    "SLEEPME",
];

/// POSTs `body` to `path` with `token`; the status and the JSON answer.
pub async fn post(
    host: &Host,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    post_to(host.addr, path, token, body).await
}

/// POSTs `body` to `path` at `addr` with `token`; the status and the JSON
/// answer.
pub async fn post_to(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// Installs `bytes` as `kind` through the admin API and expects it to go
/// live; returns the answer.
pub async fn install(host: &Host, kind: &str, bytes: Vec<u8>) -> serde_json::Value {
    let (code, reply) = post(host, &format!("/admin/plugins/{kind}"), Some(TOKEN), bytes).await;
    assert_eq!(code, 200, "installing a {kind}: {reply}");
    reply
}

/// The active version of `kind`.
pub fn active_version(host: &Host, kind: PluginKind) -> String {
    host.registry
        .active(kind)
        .map(|a| a.version)
        .unwrap_or_default()
}

/// Stops `sim`, waits until everything it sent has arrived on `ticks`, and
/// asserts that every trade arrived exactly once, in order, unchanged;
/// returns what arrived.
pub async fn assert_delivered_exactly_once(
    sim: &Simulator,
    consumer: &super::Consumer,
    ticks: &str,
) -> Vec<super::Seen> {
    const SECS: Duration = Duration::from_secs(30);
    sim.shutdown().await;
    let stats = sim.stats().clone();
    let sent = stats.sent_trades();
    assert_eq!(sent.len() as u64, SimulatorStats::get(&stats.trades_sent));
    super::wait_until("every tick delivered", SECS, || {
        consumer.count(ticks) >= sent.len()
    })
    .await;
    // Anything extra (a duplicate) would arrive right behind.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = consumer.on(ticks);
    assert_eq!(got.len(), sent.len(), "ticks lost or duplicated");
    for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
        let g = &g.json;
        assert_eq!(
            (s.symbol.as_str(), s.price, s.size, s.timestamp),
            (
                g["symbol"].as_str().unwrap(),
                g["price"].as_f64().unwrap(),
                g["volume"].as_u64().unwrap(),
                g["timestamp"].as_i64().unwrap()
            ),
            "tick {i} out of order or changed"
        );
    }
    got
}

/// A host with the admin API on, fed by its own recording simulator at
/// `rate` trades/s over `symbols`, publishing to a private Redis that a
/// consumer records; ticks are already flowing.
pub struct LoadedHost {
    /// The private Redis.
    pub redis: super::RedisServer,
    /// The host's channels.
    pub ch: tickstock::bus::Channels,
    /// Everything published, as a consumer saw it.
    pub consumer: super::Consumer,
    /// The simulator feeding the host.
    pub sim: Simulator,
    /// The host.
    pub host: TestHost,
}

/// Starts a [`LoadedHost`] for the test `name`.
pub async fn loaded_host(name: &str, rate: f64, symbols: &[&str]) -> LoadedHost {
    let (redis, ch, consumer) = super::redis_and_consumer(name).await;
    let sim = recording_simulator(rate, symbols).await;
    let host = host_with(&sim, ch.prefix(), Some(redis.url()), symbols).await;
    super::wait_until("ticks flowing", Duration::from_secs(30), || {
        consumer.count(&ch.ticks()) > 20
    })
    .await;
    LoadedHost {
        redis,
        ch,
        consumer,
        sim,
        host,
    }
}

/// Some of `got`, but not all, carry `field`: a version that adds it went
/// live part way through.
pub fn some_but_not_all_carry(got: &[super::Seen], field: &str) {
    let with_field = got.iter().filter(|t| t.json.get(field).is_some()).count();
    assert!(
        with_field > 0 && with_field < got.len(),
        "{with_field} of {} ticks carry {field}",
        got.len()
    );
}

/// The status API's answer (`GET /streaming/api/status`).
pub async fn status(host: &Host) -> serde_json::Value {
    reqwest::get(format!("http://{}/streaming/api/status", host.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
