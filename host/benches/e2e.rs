//! End-to-end performance as an operator would measure it, printed as one
//! table against the targets. Everything runs on this machine: a private
//! `redis-server`, the release `tickstock` binary as its own process, and
//! subscribers that read every message.
//!
//! - **P1 throughput**: `tickstock simulate --rate 0 --batch 100` (its own
//!   process) → `tickstock ingest` → Redis, with one `redis-cli SUBSCRIBE`
//!   consumer; ticks/s published, read from Redis's own `PUBLISH` counter
//!   over a steady window. Beside it, the ceiling: `redis-benchmark -P 16`
//!   publishing a tick-sized payload to the same channel, with the same
//!   subscriber, in the same run (redis-benchmark's default 50 clients;
//!   the host publishes over one connection). The PUBLISH counter includes
//!   the host's few `feed` events, a few per second.
//! - **P3 latency** at 10,000 trades/s: the simulator runs in this process
//!   and logs when each frame was written; a subscriber here stamps each
//!   tick's arrival, and the two are matched by symbol, price, size and
//!   timestamp (one clock, so no skew).
//!   Measured through `ingest`, and again through `run`; and, as a
//!   baseline in the same run, with the simulator pacing in 10 ms steps
//!   (bursts of 100 trades) instead of 1 ms. The first second is left out.
//! - **P5 footprint**: peak RSS (`VmHWM`) of `tickstock run` at 10,000
//!   trades/s over the default 500 symbols, and of `ingest` under the P1
//!   overload; start-up to the first tick on Redis with a warm cache.
//!
//! - **P2 WASM cost**: the default normalizer and health components through
//!   the host runtime against the same guest crates compiled natively into
//!   this bench, per frame of 1, 10 and 100 trades: `normalize-frame`, then
//!   `observe` of the frame's ticks. Native and WASM rounds alternate on one
//!   thread and the median of the per-round ratios is reported, so a noisy
//!   neighbour hits both sides alike.
//! - **P4 swap** under 100,000 trades/s: `tickstock run` as its own process,
//!   the normalizer swapped 20 times (1.0.0 <-> 1.1.0) through the admin
//!   API; every trade the simulator logged is matched in order against what
//!   a subscriber received (lost, duplicated, out of order), and the pause
//!   of the hot path is the one each install reports.
//!
//! - **Shadow cost** (no target): ticks/s `tickstock run` publishes at full
//!   input speed, alone and then with a shadow of the 1.1.0 normalizer
//!   running, in the same process and run.
//!
//! Per-stage micro-benchmarks (criterion): `--bench normalize` and
//! `--bench swap`.
//!
//! `cargo bench -p tickstock --bench e2e` (`-- --seconds N` sets the P1
//! window, 10 by default; `-- --p2-only` measures P2 and its breakdown
//! alone). When P2 is missed, the table is followed by its profile: where
//! the WASM side's time goes and what the ratio would be without each
//! part (`e2e/wasm_cost.rs`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

/// The `tickstock` binary's allocator and its options, so that the
/// in-process measurements (P2's both sides) allocate as the product does.
#[path = "../src/allocator.rs"]
mod allocator;

#[path = "../../tests/common/frames.rs"]
mod frames;
#[path = "../../tests/common/process.rs"]
mod process;
#[path = "../../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;
#[path = "e2e/wasm_cost.rs"]
mod wasm_cost;

use std::collections::{HashMap, VecDeque};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process::Proc;
use redis_server::{free_port, RedisServer};

const KEY: &str = "bench-key";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const PREFIX: &str = "bench";

/// Peak RSS of `proc` in MiB (NaN once it is gone).
fn peak_rss_mib(proc: &Proc) -> f64 {
    proc.memory_mib("VmHWM:").unwrap_or(f64::NAN)
}

fn tickstock(args: &[&str]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_tickstock"))
            .args(args)
            .env("MASSIVE_API_KEY", KEY)
            .env("TICKSTOCK_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("TOKIO_WORKER_THREADS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn host(role: &str, redis: &RedisServer, feed_url: &str) -> Proc {
    host_on(role, redis, feed_url, "127.0.0.1:0")
}

/// `host`, its HTTP server (dashboard and admin API) on `listen`.
fn host_on(role: &str, redis: &RedisServer, feed_url: &str, listen: &str) -> Proc {
    tickstock(&[
        role,
        "--redis-url",
        &redis.url(),
        "--massive-url",
        feed_url,
        "--channel-prefix",
        PREFIX,
        "--listen",
        listen,
    ])
}

fn ticks_channel() -> String {
    format!("{PREFIX}:market:ticks")
}

/// `redis-cli SUBSCRIBE` on the ticks channel, output discarded: the
/// consumer the targets are stated with.
fn redis_cli_subscriber(redis: &RedisServer) -> Proc {
    let proc = Proc(
        Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "subscribe", &ticks_channel()])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-cli"),
    );
    std::thread::sleep(Duration::from_millis(300));
    proc
}

/// `tickstock simulate --rate 0 --batch 100` on a free port: its feed URL.
fn full_speed_simulator() -> (Proc, String) {
    let port = free_port();
    let sim = tickstock(&[
        "simulate",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--key",
        KEY,
        "--rate",
        "0",
        "--batch",
        "100",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    (sim, format!("ws://127.0.0.1:{port}/stocks"))
}

/// P1: ticks/s through `ingest` at full input speed, and its peak RSS.
fn throughput(seconds: u64) -> (f64, f64) {
    let redis = RedisServer::start();
    let _sub = redis_cli_subscriber(&redis);
    let (_sim, feed) = full_speed_simulator();
    let ingest = host("ingest", &redis, &feed);
    // Warm up (start-up, the first reconnects of nothing), then a window.
    std::thread::sleep(Duration::from_secs(3));
    (publish_rate(&redis, seconds), peak_rss_mib(&ingest))
}

/// Messages per second Redis published over the next `seconds` (its own
/// `PUBLISH` counter).
fn publish_rate(redis: &RedisServer, seconds: u64) -> f64 {
    let (before, t0) = (redis.publish_calls(), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    (redis.publish_calls() - before) as f64 / t0.elapsed().as_secs_f64()
}

/// What a shadow run costs the live path: ticks/s published by `tickstock
/// run` at full input speed over `seconds`, first alone, then with a shadow
/// of the 1.1.0 normalizer running (the same process, the same run).
fn shadow_cost(seconds: u64) -> ShadowCost {
    let redis = RedisServer::start();
    let _sub = redis_cli_subscriber(&redis);
    let (_sim, feed) = full_speed_simulator();
    let admin = free_port();
    let _run = host_on("run", &redis, &feed, &format!("127.0.0.1:{admin}"));
    std::thread::sleep(Duration::from_secs(3));
    let alone = publish_rate(&redis, seconds);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{admin}/admin/plugins/normalizer/shadow");
    let client = reqwest::Client::new();
    let started = admin_call(
        &rt,
        client
            .post(&url)
            .body(tickstock_test_artifacts::normalizer_next()),
    );
    assert_eq!(started["ok"], true, "{started}");
    std::thread::sleep(Duration::from_secs(1));
    let shadowed = publish_rate(&redis, seconds);
    // The shadow ran through the window: what it compared and skipped.
    let report = admin_call(&rt, client.get(&url));
    let report = &report["shadow"];
    assert!(report["ended_at"].is_null(), "the shadow ended: {report}");
    ShadowCost {
        alone,
        shadowed,
        compared: report["inputs_compared"].as_u64().unwrap_or(0),
        skipped: report["skipped_inputs"].as_u64().unwrap_or(0),
    }
}

/// Sends an admin API request with the token; its JSON answer.
fn admin_call(rt: &tokio::runtime::Runtime, request: reqwest::RequestBuilder) -> serde_json::Value {
    rt.block_on(async {
        request
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

/// What [`shadow_cost`] measured.
struct ShadowCost {
    alone: f64,
    shadowed: f64,
    /// Frames the shadow compared, and skipped (it fell behind).
    compared: u64,
    skipped: u64,
}

/// The Redis ceiling: `redis-benchmark -P 16` PUBLISH of a tick-sized
/// payload, with a `redis-cli` subscriber reading every message.
fn ceiling() -> f64 {
    let redis = RedisServer::start();
    let _sub = redis_cli_subscriber(&redis);
    let payload = r#"{"type":"market_tick","symbol":"AAPL","price":227.52,"volume":100,"timestamp":1759864911658,"source":"massive"}"#;
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &redis.port.to_string(),
            "-P",
            "16",
            "-n",
            "2000000",
            "-q",
        ])
        .args(["PUBLISH", &ticks_channel(), payload])
        .output()
        .expect("redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    // "PUBLISH ...: 612345.67 requests per second, p50=..." (after \r progress lines)
    text.rsplit('\r')
        .find_map(|part| {
            let (_, rest) = part.split_once(": ")?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .unwrap_or(f64::NAN)
}

/// A simulator in this process (on its own runtime, returned with it) that
/// logs every trade it sends: `rate` trades/s over the default universe, in
/// frames of `batch`, paced every `pace`, from `seed`.
fn recording_simulator(
    rate: f64,
    batch: usize,
    pace: Duration,
    seed: u64,
) -> (tokio::runtime::Runtime, tickstock::simulator::Simulator) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let universe = tickstock::universe::Universe::named(tickstock::universe::DEFAULT_UNIVERSE)
        .unwrap()
        .symbols;
    let sim = rt.block_on(async {
        tickstock::simulator::Simulator::start(
            "127.0.0.1:0",
            tickstock::simulator::SimulatorConfig {
                key: Some(KEY.into()),
                rate,
                batch,
                seed,
                universe,
                record: true,
                pace_every: pace,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    });
    (rt, sim)
}

/// What the bench reads of a tick on the ticks channel.
#[derive(serde::Deserialize)]
struct WireTick {
    symbol: String,
    price: f64,
    volume: u64,
    timestamp: i64,
}

/// What identifies a trade, short of an id: symbol, price, size and time.
fn trade_key(symbol: &str, price: f64, size: u64, t: i64) -> (String, u64, u64, i64) {
    (symbol.to_string(), price.to_bits(), size, t)
}

type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;

/// A thread subscribed to the ticks channel that stamps every message's
/// arrival, until the flag is set. Returns once it is subscribed.
fn subscribe_all(redis: &RedisServer) -> (Arrivals, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let arrivals: Arrivals = Arc::default();
    let quit = Arc::new(AtomicBool::new(false));
    let (tx, ready) = std::sync::mpsc::channel();
    let reader = {
        let (arrivals, quit, url) = (arrivals.clone(), quit.clone(), redis.url());
        std::thread::spawn(move || {
            let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut pubsub = conn.as_pubsub();
            pubsub.subscribe(ticks_channel()).unwrap();
            pubsub
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            tx.send(()).unwrap();
            while !quit.load(Ordering::Relaxed) {
                if let Ok(msg) = pubsub.get_message() {
                    let at = Instant::now();
                    let payload: String = msg.get_payload().unwrap();
                    arrivals.lock().unwrap().push((payload, at));
                }
            }
        })
    };
    ready.recv().unwrap();
    (arrivals, quit, reader)
}

struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    matched: usize,
    sent: usize,
    rss: f64,
    first_tick: Duration,
}

/// Latency, peak RSS and start-up at 10,000 trades/s through `role`, the
/// simulator sending what is due every `pace`.
fn latency(role: &str, seconds: u64, pace: Duration) -> Latency {
    let (rt, sim) = recording_simulator(10_000.0, 10, pace, 7);
    let redis = RedisServer::start();
    let (arrivals, quit, reader) = subscribe_all(&redis);
    let started = Instant::now();
    let run = host(role, &redis, &sim.url());
    while arrivals.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no tick");
        std::thread::sleep(Duration::from_millis(1));
    }
    let first_tick = started.elapsed();
    // Start-up (connections, the first compilation's caches) is not what
    // the steady state costs: arrivals in the first second are left out.
    let steady_from = Instant::now() + Duration::from_secs(1);
    std::thread::sleep(Duration::from_secs(seconds + 1));
    let rss = peak_rss_mib(&run);
    drop(run);
    rt.block_on(sim.shutdown());
    quit.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    // Two trades can look alike (same symbol, price, size and ms): each
    // arrival takes the earliest unmatched sending of its kind.
    let log = sim.stats().sent_trades();
    let mut sent: HashMap<_, VecDeque<Instant>> = HashMap::new();
    for s in &log {
        sent.entry(trade_key(&s.symbol, s.price, s.size, s.timestamp))
            .or_default()
            .push_back(s.sent_at);
    }
    let mut micros: Vec<f64> = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(payload, at)| {
            let t: WireTick = serde_json::from_str(payload).ok()?;
            if *at < steady_from {
                return None;
            }
            let sent_at = sent
                .get_mut(&trade_key(&t.symbol, t.price, t.volume, t.timestamp))?
                .pop_front()?;
            Some(at.saturating_duration_since(sent_at).as_secs_f64() * 1e6)
        })
        .collect();
    assert!(!micros.is_empty(), "no tick matched the simulator's log");
    micros.sort_by(f64::total_cmp);
    let q = |p: f64| micros[((micros.len() as f64 - 1.0) * p).round() as usize];
    Latency {
        p50: q(0.50),
        p99: q(0.99),
        p999: q(0.999),
        max: *micros.last().unwrap(),
        matched: micros.len(),
        sent: log.len(),
        rss,
        first_tick,
    }
}

/// P4: swaps under load through `tickstock run`.
struct Swaps {
    swaps: usize,
    sent: usize,
    lost: usize,
    duplicated: usize,
    reordered: usize,
    max_pause_us: u64,
    median_pause_us: u64,
    rate: f64,
}

/// P4: `tickstock run` fed 100,000 trades/s while the normalizer is swapped
/// `swaps` times through the admin API; every logged trade matched in order.
fn swaps_under_load(swaps: usize) -> Swaps {
    let (rt, sim) = recording_simulator(100_000.0, 100, tickstock::simulator::PACE_EVERY, 11);
    let redis = RedisServer::start();
    let (arrivals, quit, reader) = subscribe_all(&redis);
    let admin = free_port();
    let run = host_on("run", &redis, &sim.url(), &format!("127.0.0.1:{admin}"));
    let started = Instant::now();
    while arrivals.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no tick");
        std::thread::sleep(Duration::from_millis(5));
    }
    let versions = [
        tickstock_test_artifacts::normalizer_next(),
        tickstock::plugins::embedded::NORMALIZER.to_vec(),
    ];
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{admin}/admin/plugins/normalizer");
    let mut pauses: Vec<u64> = (0..swaps)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(400));
            let reply = admin_call(&rt, client.post(&url).body(versions[i % 2].clone()));
            reply["installed"]["pause_us"]
                .as_u64()
                .unwrap_or_else(|| panic!("swap {i}: {reply}"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    rt.block_on(sim.shutdown());
    // Every sent trade must arrive: wait for the tail, then stop.
    let log = sim.stats().sent_trades();
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrivals.lock().unwrap().len() < log.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(run);
    quit.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    // Each arrival takes the earliest unmatched sending that looks like it;
    // an arrival with none left is a duplicate, one whose sending comes
    // before an earlier arrival's is out of order.
    let mut sent: HashMap<_, VecDeque<usize>> = HashMap::new();
    for (i, s) in log.iter().enumerate() {
        sent.entry(trade_key(&s.symbol, s.price, s.size, s.timestamp))
            .or_default()
            .push_back(i);
    }
    let (mut duplicated, mut reordered, mut matched, mut last) = (0, 0, 0, None);
    for (payload, _) in arrivals.lock().unwrap().iter() {
        let Ok(t) = serde_json::from_str::<WireTick>(payload) else {
            continue;
        };
        match sent
            .get_mut(&trade_key(&t.symbol, t.price, t.volume, t.timestamp))
            .and_then(VecDeque::pop_front)
        {
            None => duplicated += 1,
            Some(i) => {
                matched += 1;
                if last.is_some_and(|l| i < l) {
                    reordered += 1;
                }
                last = Some(i);
            }
        }
    }
    pauses.sort_unstable();
    Swaps {
        swaps,
        sent: log.len(),
        lost: log.len() - matched,
        duplicated,
        reordered,
        max_pause_us: *pauses.last().unwrap(),
        median_pause_us: pauses[pauses.len() / 2],
        rate: match (log.first(), log.last()) {
            (Some(a), Some(b)) => log.len() as f64 / (b.sent_at - a.sent_at).as_secs_f64(),
            _ => 0.0,
        },
    }
}

/// The head of the targets table.
fn table_header() {
    println!("| target | measured | goal | |");
    println!("|---|---|---|---|");
}

fn row(target: &str, measured: String, goal: &str, met: bool) {
    println!(
        "| {target} | {measured} | {goal} | {} |",
        if met { "met" } else { "**missed**" }
    );
}

/// Compiles the default plugins into the default compiled cache (as a
/// host that ran before would have), so that start-up is measured warm.
fn warm_cache() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, bytes) in [
        ("normalizer", tickstock::plugins::embedded::NORMALIZER),
        ("health", tickstock::plugins::embedded::HEALTH),
    ] {
        let file = dir.path().join(format!("{kind}.wasm"));
        std::fs::write(&file, bytes).unwrap();
        let checked = Command::new(env!("CARGO_BIN_EXE_tickstock"))
            .args(["plugin", "check", kind])
            .arg(&file)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(checked.success(), "plugin check {kind}");
    }
}

fn main() {
    let frame_sizes = [1, 10, 100];
    if std::env::args().any(|a| a == "--p2-only") {
        let costs: Vec<_> = frame_sizes.into_iter().map(wasm_cost::measure).collect();
        table_header();
        p2_rows(&costs);
        wasm_cost::print_breakdown(&costs);
        return;
    }
    warm_cache();
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let (tps, overload_rss) = throughput(seconds);
    let ceiling = ceiling();
    let lat = latency("ingest", seconds, tickstock::simulator::PACE_EVERY);
    let coarse = latency("ingest", seconds, Duration::from_millis(10));
    let all = latency("run", seconds, tickstock::simulator::PACE_EVERY);
    let costs: Vec<_> = frame_sizes.into_iter().map(wasm_cost::measure).collect();
    let swap = swaps_under_load(20);
    let cost = shadow_cost(seconds.min(8));
    let ratio = tps / ceiling;
    table_header();
    row(
        "P1 ticks/s, simulator → ingest → Redis → redis-cli",
        format!("{tps:.0}"),
        "≥ 250,000",
        tps >= 250_000.0,
    );
    row(
        "P1 vs redis-benchmark -P 16 PUBLISH, same subscriber",
        format!("{:.0}% of {ceiling:.0}/s", ratio * 100.0),
        "≥ 70%",
        ratio >= 0.70,
    );
    p2_rows(&costs);
    row(
        "P3 latency at 10,000 trades/s, send → `ingest` → subscriber (µs)",
        format!(
            "p50 {:.0}, p99 {:.0}, p99.9 {:.0}, max {:.0} ({} of {} ticks matched)",
            lat.p50, lat.p99, lat.p999, lat.max, lat.matched, lat.sent
        ),
        "p99 < 1,000",
        lat.p99 < 1_000.0,
    );
    row(
        "P3 the same, the simulator pacing in 10 ms steps (baseline)",
        format!(
            "p50 {:.0}, p99 {:.0}, p99.9 {:.0}, max {:.0} ({} of {} ticks matched)",
            coarse.p50, coarse.p99, coarse.p999, coarse.max, coarse.matched, coarse.sent
        ),
        "p99 < 1,000",
        coarse.p99 < 1_000.0,
    );
    row(
        "P3 the same through `run` (all roles in one process)",
        format!(
            "p50 {:.0}, p99 {:.0}, p99.9 {:.0}, max {:.0} ({} of {} ticks matched)",
            all.p50, all.p99, all.p999, all.max, all.matched, all.sent
        ),
        "p99 < 1,000",
        all.p99 < 1_000.0,
    );
    row(
        &format!(
            "P4 {} normalizer swaps under {:.0} trades/s through `run`: lost / duplicated / out of order",
            swap.swaps, swap.rate
        ),
        format!(
            "{} / {} / {} of {} trades",
            swap.lost, swap.duplicated, swap.reordered, swap.sent
        ),
        "0 / 0 / 0",
        swap.lost + swap.duplicated + swap.reordered == 0,
    );
    row(
        "P4 pause of the hot path per swap (µs)",
        format!("median {}, max {}", swap.median_pause_us, swap.max_pause_us),
        "< 1,000",
        swap.max_pause_us < 1_000,
    );
    println!(
        "| shadow cost: ticks/s published by `run` at full input speed, alone / with a normalizer shadow | {:.0} / {:.0} ({:.0}%); the shadow compared {} frames and skipped {} | measured, no target | |",
        cost.alone,
        cost.shadowed,
        cost.shadowed / cost.alone * 100.0,
        cost.compared,
        cost.skipped
    );
    row(
        "P5 peak RSS, `run` at 10,000 trades/s, 500 symbols",
        format!("{:.1} MiB", all.rss),
        "< 64 MiB",
        all.rss < 64.0,
    );
    row(
        "P5 peak RSS, `ingest` under the P1 overload",
        format!("{overload_rss:.1} MiB"),
        "< 64 MiB",
        overload_rss < 64.0,
    );
    row(
        "P5 start → first tick on Redis (warm cache)",
        format!("{:.0} ms", all.first_tick.as_secs_f64() * 1e3),
        "< 500 ms",
        all.first_tick < Duration::from_millis(500),
    );
    if costs.iter().any(|c| c.ratio > wasm_cost::TARGET) {
        wasm_cost::print_breakdown(&costs);
    }
}

/// P2's rows, for each frame size.
fn p2_rows(costs: &[wasm_cost::WasmCost]) {
    for c in costs {
        row(
            &format!(
                "P2 normalize + observe, WASM / native time per tick (one thread), frames of {}",
                c.n
            ),
            format!(
                "{:.2}x ({:.2} µs vs {:.2} µs per tick)",
                c.ratio, c.wasm, c.native
            ),
            "≤ 1.3x",
            c.ratio <= wasm_cost::TARGET,
        );
    }
}
