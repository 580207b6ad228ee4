//! Helpers shared by every test module.

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

/// Polls `cond` every 20 ms until it holds or `timeout` passes; panics
/// with `what` on timeout.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        if std::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` symbols named `S0`, `S1`, ...
pub fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("S{i}")).collect()
}

/// A simulator on a free loopback port.
pub async fn simulator(
    config: tickstock::simulator::SimulatorConfig,
) -> tickstock::simulator::Simulator {
    tickstock::simulator::Simulator::start("127.0.0.1:0", config)
        .await
        .unwrap()
}

/// Feed client timing for tests: fast reconnects.
pub fn fast_timing() -> tickstock::feed::Timing {
    let mut t = tickstock::feed::Timing::default();
    t.backoff.initial = Duration::from_millis(50);
    t.backoff.max = Duration::from_millis(500);
    t.backoff.jitter = 0.0;
    t.backoff.max_connections_floor = Duration::from_secs(3);
    t.handshake_timeout = Duration::from_secs(5);
    t
}

/// A feed client and its pipeline, running against some server.
pub struct Feed {
    pub stats: std::sync::Arc<tickstock::feed::FeedStats>,
    pub pipeline: std::sync::Arc<tickstock::pipeline::PipelineStats>,
    pub out: tokio::sync::mpsc::Receiver<tickstock::pipeline::Output>,
    pub cancel: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), tickstock::feed::FeedError>>,
}

/// Starts a feed client (embedded normalizer) for `topics` on `url`.
pub fn feed(
    url: &str,
    key: &str,
    topics: Vec<String>,
    timing: tickstock::feed::Timing,
    queue: usize,
    out_capacity: usize,
) -> Feed {
    use tickstock::feed::{FeedClient, FeedStats};
    let engine = engine();
    let plugin = normalizer(&engine);
    let (out_tx, out) = tokio::sync::mpsc::channel(out_capacity);
    let stats = std::sync::Arc::new(FeedStats::default());
    let pipeline = std::sync::Arc::new(tickstock::pipeline::PipelineStats::default());
    let (_thread, frames) =
        tickstock::pipeline::spawn(plugin, queue, out_tx, pipeline.clone()).unwrap();
    let client = FeedClient::new(
        url,
        tickstock::secret::Secret::new(key),
        topics,
        frames,
        stats.clone(),
    )
    .with_timing(timing);
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(client.run(cancel.clone()));
    Feed {
        stats,
        pipeline,
        out,
        cancel,
        task,
    }
}

impl Feed {
    /// Drains ticks until `n` arrived or `timeout` passed (the caller then
    /// compares what arrived with what was sent).
    pub async fn drain_up_to(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Vec<tickstock::plugins::Tick> {
        let mut ticks = Vec::new();
        let deadline = std::time::Instant::now() + timeout;
        while ticks.len() < n && std::time::Instant::now() < deadline {
            while let Ok(out) = self.out.try_recv() {
                if let tickstock::pipeline::Output::Ticks(batch) = out {
                    ticks.extend(batch.ticks.into_iter().map(|t| t.tick));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ticks
    }

    /// Collects ticks until `n` arrived (or panics after `timeout`).
    pub async fn collect(&mut self, n: usize, timeout: Duration) -> Vec<tickstock::plugins::Tick> {
        let mut ticks = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while ticks.len() < n {
            match tokio::time::timeout_at(deadline, self.out.recv()).await {
                Ok(Some(tickstock::pipeline::Output::Ticks(batch))) => {
                    ticks.extend(batch.ticks.into_iter().map(|t| t.tick))
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("pipeline closed after {} ticks", ticks.len()),
                Err(_) => panic!("only {} of {n} ticks within {timeout:?}", ticks.len()),
            }
        }
        ticks
    }
}

/// Asserts that `received` is exactly `sent`, in order.
pub fn assert_same_trades(
    sent: &[tickstock::simulator::SentTrade],
    received: &[tickstock::plugins::Tick],
) {
    assert_eq!(
        sent.len(),
        received.len(),
        "sent {} trades, received {}",
        sent.len(),
        received.len()
    );
    for (i, (s, r)) in sent.iter().zip(received).enumerate() {
        assert_eq!(
            (s.symbol.as_str(), s.seq, s.price, s.size, s.timestamp),
            (
                r.symbol.as_str(),
                r.sequence.unwrap_or(0),
                r.price,
                r.size,
                r.timestamp_ms
            ),
            "trade {i} differs"
        );
    }
}

/// A private `redis-server` on a free port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers PING.
    pub fn start() -> RedisServer {
        let port = free_port();
        let mut server = RedisServer { port, child: None };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut c) = client.get_connection() {
                    if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                        return;
                    }
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A unique channel prefix for one test.
pub fn prefix(test: &str) -> String {
    format!("t{}-{}", std::process::id(), test)
}

/// A message as an external consumer sees it: channel, parsed JSON, arrival.
#[derive(Debug, Clone)]
pub struct Seen {
    pub channel: String,
    pub json: serde_json::Value,
    pub at: std::time::Instant,
}

/// Subscribes (pattern `PREFIX:*`) with a plain Redis client, the way a
/// Python consumer would, and records everything, reconnecting if Redis
/// restarts.
pub struct Consumer {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Consumer {
    pub async fn start(url: &str, prefix: &str) -> Consumer {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let client = redis::Client::open(url).unwrap();
        let pattern = format!("{prefix}:*");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let (s, st) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while !st.is_cancelled() {
                let Ok(mut pubsub) = client.get_async_pubsub().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if pubsub.psubscribe(&pattern).await.is_err() {
                    continue;
                }
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
                let mut stream = pubsub.into_on_message();
                loop {
                    let msg = tokio::select! {
                        () = st.cancelled() => return,
                        m = stream.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    let payload: String = msg.get_payload().unwrap();
                    let json = serde_json::from_str(&payload)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {payload}"));
                    s.lock().unwrap().push(Seen {
                        channel: msg.get_channel_name().to_string(),
                        json,
                        at: std::time::Instant::now(),
                    });
                }
            }
        });
        ready_rx.await.unwrap();
        Consumer { seen, stop }
    }

    /// Everything seen on `channel` (full name) so far.
    pub fn on(&self, channel: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.channel == channel)
            .cloned()
            .collect()
    }

    /// How many messages were seen on `channel`.
    pub fn count(&self, channel: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.channel == channel)
            .count()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A JSON Schema from `schemas/`.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/../schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Asserts `value` matches the schema, listing every violation.
pub fn assert_schema(validator: &jsonschema::Validator, value: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{value} violates the schema: {errors:?}");
}

/// A configuration for in-process roles in tests.
pub fn config(
    prefix: &str,
    redis: Option<String>,
    symbols: usize,
    interval: Duration,
) -> tickstock::config::Config {
    let args = tickstock::cli::CommonArgs {
        redis_url: redis,
        channel_prefix: Some(prefix.to_string()),
        health_interval: Some(interval.as_secs_f64()),
        symbols: Some(symbols_list(symbols)),
        listen: Some("127.0.0.1:0".into()),
        cache_dir: Some(std::env::temp_dir().join("tickstock-test-cache")),
        ..Default::default()
    };
    tickstock::config::Config::resolve_with(&args, None).unwrap()
}

/// Ticker-like symbol names.
pub fn symbols_list(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SYM{i}")).collect()
}

/// The tickstock binary built for these tests.
pub fn tickstock_bin() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tickstock"));
    cmd.env_remove("MASSIVE_API_KEY")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "info");
    cmd
}

/// A private Redis, the channel names of a fresh prefix for `test`, and a
/// consumer already subscribed to all of them.
pub async fn redis_and_consumer(test: &str) -> (RedisServer, tickstock::bus::Channels, Consumer) {
    let redis = RedisServer::start();
    let prefix = prefix(test);
    let consumer = Consumer::start(&redis.url(), &prefix).await;
    (redis, tickstock::bus::Channels::new(prefix), consumer)
}
