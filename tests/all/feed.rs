//! The Massive feed client against the simulator, over real loopback
//! WebSockets, with the real normalizer component behind it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tickstock::feed::{FeedError, FeedState, FeedStats};
use tickstock::plugins::SkipReason;
use tickstock::simulator::{Faults, SimulatorConfig, SimulatorStats};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{self, assert_same_trades, wait_until, Feed};

fn topics(symbols: &[String]) -> Vec<String> {
    symbols.iter().map(|s| format!("T.{s}")).collect()
}

fn config(symbols: usize, rate: f64, batch: usize) -> SimulatorConfig {
    SimulatorConfig {
        rate,
        batch,
        universe: helpers::symbols(symbols),
        record: true,
        seed: 11,
        ..Default::default()
    }
}

const SECS: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_authenticates_subscribes_and_gets_ticks_in_order() {
    let sim = helpers::simulator(config(30, 3_000.0, 20)).await;
    let syms = helpers::symbols(30);
    let mut feed = helpers::feed(
        &sim.url(),
        "k",
        topics(&syms),
        helpers::fast_timing(),
        1024,
        1024,
    );
    let received = feed.collect(600, SECS).await;
    feed.cancel.cancel();
    feed.task.await.unwrap().unwrap();

    // The log is read once the simulator stopped: a trade is logged right
    // after its frame is written, so a snapshot taken while it runs can
    // lack the last frame the client already has.
    let stats = sim.stats().clone();
    sim.shutdown().await;
    let sent = stats.sent_trades();
    assert!(sent.len() >= received.len());
    assert_same_trades(&sent[..received.len()], &received);
    assert_eq!(FeedStats::get(&feed.stats.authenticated), 1);
    assert_eq!(
        FeedStats::get(&feed.stats.subscribe_acks),
        30,
        "one ack per topic"
    );
    assert_eq!(feed.stats.state(), FeedState::Stopped);
    // More than a handful of symbols actually traded.
    let distinct: std::collections::HashSet<_> = received.iter().map(|t| &t.symbol).collect();
    assert!(distinct.len() > 10, "{} symbols", distinct.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_size_limit_is_refused_and_the_feed_goes_on() {
    // Every 20 frames a 50 MiB one: refused from its header (never read
    // into memory), counted, and the feed reconnects and goes on.
    let mut cfg = config(10, 2_000.0, 10);
    cfg.faults = Faults {
        huge_frame_every: Some((20, 50 << 20)),
        ..Default::default()
    };
    let sim = helpers::simulator(cfg).await;
    let syms = helpers::symbols(10);
    let mut feed = helpers::feed(
        &sim.url(),
        "k",
        topics(&syms),
        helpers::fast_timing(),
        1024,
        1024,
    );
    let received = feed.collect(600, SECS).await;
    assert!(received.len() >= 600);
    assert!(FeedStats::get(&feed.stats.frames_dropped_oversize) >= 1);
    assert!(FeedStats::get(&feed.stats.reconnects) >= 1);
    feed.cancel.cancel();
    feed.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_stops_ends_the_feed_with_an_error() {
    let sim = helpers::simulator(config(10, 2_000.0, 10)).await;
    let syms = helpers::symbols(10);
    let mut feed = helpers::feed(
        &sim.url(),
        "k",
        topics(&syms),
        helpers::fast_timing(),
        64,
        4,
    );
    feed.collect(50, SECS).await;
    // The publisher goes away: the pipeline thread stops at its next batch,
    // and the feed must not go on reading into a queue nobody serves.
    let Feed { out, task, .. } = feed;
    drop(out);
    let ended = tokio::time::timeout(SECS, task)
        .await
        .expect("the feed kept running without a pipeline")
        .unwrap();
    assert!(
        matches!(ended, Err(FeedError::PipelineStopped)),
        "{ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_reconnects_resubscribes_and_loses_nothing() {
    let mut cfg = config(5, 2_000.0, 10);
    cfg.faults = Faults {
        drop_every: Some(15),
        ..Default::default()
    };
    let sim = helpers::simulator(cfg).await;
    let syms = helpers::symbols(5);
    let mut feed = helpers::feed(
        &sim.url(),
        "k",
        topics(&syms),
        helpers::fast_timing(),
        1024,
        4096,
    );
    let stats = sim.stats().clone();
    let feed_stats = feed.stats.clone();
    wait_until("three drops and reconnects", SECS, || {
        SimulatorStats::get(&stats.drops) >= 3 && FeedStats::get(&feed_stats.reconnects) >= 3
    })
    .await;
    // Stop the server, then let the client drain what was sent.
    sim.shutdown().await;
    let sent_total = SimulatorStats::get(&stats.trades_sent);
    let received = feed.drain_up_to(sent_total as usize, SECS).await;
    feed.cancel.cancel();
    assert_same_trades(&stats.sent_trades(), &received);
    assert!(
        FeedStats::get(&feed.stats.reconnects) >= 3,
        "reconnects: {}",
        FeedStats::get(&feed.stats.reconnects)
    );
    // Every session re-authenticated and re-subscribed every topic.
    let sessions = FeedStats::get(&feed.stats.authenticated);
    assert!(sessions >= 4);
    assert!(SimulatorStats::get(&stats.subscribes) >= sessions);
    assert!(FeedStats::get(&feed.stats.subscribe_acks) >= 5 * (sessions - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_stops_the_client_with_auth_failed() {
    let mut cfg = config(5, 100.0, 1);
    cfg.key = Some("the-right-key".into());
    let sim = helpers::simulator(cfg).await;
    let feed = helpers::feed(
        &sim.url(),
        "wrong-key-123",
        topics(&helpers::symbols(5)),
        helpers::fast_timing(),
        16,
        16,
    );
    let result = tokio::time::timeout(SECS, feed.task)
        .await
        .unwrap()
        .unwrap();
    let err = result.expect_err("auth must fail");
    assert!(matches!(err, FeedError::AuthFailed { .. }));
    let text = format!("{err} {err:?}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains("wrong-key-123"), "the key leaked: {text}");
    assert_eq!(
        FeedStats::get(&feed.stats.connect_attempts),
        1,
        "no retry after auth_failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_backs_off_instead_of_fighting() {
    let sim = helpers::simulator(config(5, 200.0, 5)).await;
    let mut feed = helpers::feed(
        &sim.url(),
        "shared-key",
        topics(&helpers::symbols(5)),
        helpers::fast_timing(),
        1024,
        1024,
    );
    feed.collect(10, SECS).await;
    // Someone else connects with the same key.
    let (mut other, _) = tokio_tungstenite::connect_async(sim.url()).await.unwrap();
    helpers::next_message(&mut other).await;
    other
        .send(Message::text(r#"{"action":"auth","params":"shared-key"}"#))
        .await
        .unwrap();
    let stats = feed.stats.clone();
    wait_until("eviction seen", SECS, || {
        FeedStats::get(&stats.max_connections) == 1
    })
    .await;
    assert!(feed
        .stats
        .issue()
        .unwrap_or_default()
        .contains("max_connections"));
    // The client waits (the floor is 3 s here) instead of reconnecting at once.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        FeedStats::get(&feed.stats.connect_attempts),
        1,
        "reconnect storm"
    );
    assert_eq!(feed.stats.state(), FeedState::Disconnected);
    // It does come back once the floor has passed (and, being the newer
    // connection now, evicts the other one).
    wait_until("a reconnect after the floor", SECS, || {
        FeedStats::get(&stats.connect_attempts) == 2
    })
    .await;
    feed.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_frames_are_counted_and_every_trade_still_arrives() {
    let mut cfg = config(8, 2_000.0, 10);
    cfg.faults = Faults {
        malformed_every: Some(2),
        ..Default::default()
    };
    let sim = helpers::simulator(cfg).await;
    let mut feed = helpers::feed(
        &sim.url(),
        "k",
        topics(&helpers::symbols(8)),
        helpers::fast_timing(),
        1024,
        4096,
    );
    let stats = sim.stats().clone();
    wait_until("junk sent", SECS, || {
        SimulatorStats::get(&stats.junk_sent) >= 30
    })
    .await;
    sim.shutdown().await;
    let sent = stats.sent_trades();
    let received = feed.drain_up_to(sent.len(), SECS).await;
    assert_same_trades(&sent, &received);
    let junk_rounds = SimulatorStats::get(&stats.junk_sent) / 3;
    assert_eq!(
        feed.pipeline.skipped(SkipReason::Malformed),
        2 * junk_rounds
    );
    assert_eq!(feed.pipeline.skipped(SkipReason::UnknownEvent), junk_rounds);
    feed.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_never_stalls_the_socket_reader() {
    // The simulator sends as fast as the client reads; nobody drains the
    // pipeline's output, so the pipeline blocks and the frame queue fills.
    // The reader waits for room (the default 20 ms) only until a wait runs
    // out, then drops at once: a wait per frame would make 500 drops take
    // 10 s.
    let sim = helpers::simulator(config(20, 0.0, 50)).await;
    let feed = helpers::feed(
        &sim.url(),
        "k",
        topics(&helpers::symbols(20)),
        helpers::fast_timing(),
        8,
        2,
    );
    let stats = feed.stats.clone();
    wait_until("drops counted", SECS, || {
        FeedStats::get(&stats.frames_dropped_queue_full) > 500
    })
    .await;
    assert_eq!(feed.stats.state(), FeedState::Streaming);
    // Stopped first, so that the counters hold still while they are read.
    feed.cancel.cancel();
    feed.task.await.unwrap().unwrap();
    let received = FeedStats::get(&stats.frames_received);
    let dropped = FeedStats::get(&stats.frames_dropped_queue_full);
    let processed = feed.pipeline.frames.load(Ordering::Relaxed);
    // The reader kept reading: everything it read was either processed,
    // queued (at most the queue's 8 plus the one in hand) or dropped.
    assert!(
        received >= dropped + processed,
        "{received} < {dropped} + {processed}"
    );
    assert!(
        received - dropped - processed <= 8 + 1,
        "received {received}, dropped {dropped}, processed {processed}"
    );
    assert!(
        processed <= 8,
        "the consumer never read, yet {processed} frames were processed"
    );
    // Only frames the pipeline took could end a wait (it took at most its
    // output's 2, the one in hand and the queue's 8); every later frame
    // was dropped without one.
    let waits = FeedStats::get(&stats.queue_waits);
    assert!(waits <= 2 + 1 + 8 + 1, "{waits} waits for {dropped} drops");
}

/// A simulator at full speed against a 4-frame queue, drained as fast as
/// the normalizer goes: the trades sent and those that reached the output,
/// the feed's counters, and the frames it had dropped before it was
/// stopped (stopping it mid-wait drops, and counts, the frame in hand).
async fn full_speed_into_a_small_queue(
    queue_wait: Duration,
) -> (
    Vec<tickstock::simulator::SentTrade>,
    Vec<tickstock::plugins::Tick>,
    std::sync::Arc<FeedStats>,
    u64,
) {
    let sim = helpers::simulator(config(20, 0.0, 50)).await;
    let mut feed = helpers::feed_waiting(
        &sim.url(),
        "k",
        topics(&helpers::symbols(20)),
        helpers::fast_timing(),
        4,
        1024,
        queue_wait,
    );
    let received = feed.collect(20_000, SECS).await;
    let dropped = FeedStats::get(&feed.stats.frames_dropped_queue_full);
    feed.cancel.cancel();
    feed.task.await.unwrap().unwrap();
    let sent = sim.stats().clone();
    sim.shutdown().await;
    (sent.sent_trades(), received, feed.stats, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_faster_than_the_normalizer_is_slowed_down_not_dropped() {
    // The reader waits for room (here up to 2 s, far above any scheduling
    // gap on a loaded machine), so the sender goes at the normalizer's
    // pace: every trade arrives, in order, none dropped.
    let (sent, received, stats, dropped) =
        full_speed_into_a_small_queue(Duration::from_secs(2)).await;
    assert_eq!(dropped, 0);
    assert!(
        FeedStats::get(&stats.queue_waits) > 0,
        "the sender never outran the normalizer, so nothing was tested"
    );
    assert!(FeedStats::get(&stats.queue_wait_micros) > 0);
    assert!(sent.len() >= received.len());
    assert_same_trades(&sent[..received.len()], &received);

    // The same sender with no wait: the queue overflows and frames are
    // dropped (and counted), which is what the wait prevents.
    let (_, _, stats, dropped) = full_speed_into_a_small_queue(Duration::ZERO).await;
    assert!(dropped > 0);
    assert_eq!(FeedStats::get(&stats.queue_waits), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_speaks_the_protocol() {
    let mut cfg = config(50, 500.0, 5);
    cfg.key = Some("good".into());
    let sim = helpers::simulator(cfg).await;

    // Wrong path.
    let url = sim.url().replace("/stocks", "/crypto");
    assert!(tokio_tungstenite::connect_async(url).await.is_err());

    // Wrong key.
    let (mut ws, _) = tokio_tungstenite::connect_async(sim.url()).await.unwrap();
    let hello = helpers::next_text(&mut ws).await;
    assert_eq!(
        hello.as_str(),
        r#"[{"ev":"status","status":"connected","message":"Connected Successfully"}]"#
    );
    ws.send(Message::text(r#"{"action":"auth","params":"bad"}"#))
        .await
        .unwrap();
    let refused = helpers::next_text(&mut ws).await;
    assert!(
        refused.contains("auth_failed") && refused.contains("authentication failed"),
        "{refused}"
    );

    // Right key, wildcard subscription, per-topic ack, trades for many symbols.
    let (mut first, _) = tokio_tungstenite::connect_async(sim.url()).await.unwrap();
    helpers::next_message(&mut first).await;
    first
        .send(Message::text(r#"{"action":"auth","params":"good"}"#))
        .await
        .unwrap();
    let ok = helpers::next_text(&mut first).await;
    assert!(ok.contains("auth_success"), "{ok}");
    first
        .send(Message::text(r#"{"action":"subscribe","params":"T.*"}"#))
        .await
        .unwrap();
    let ack = helpers::next_text(&mut first).await;
    assert!(ack.contains(r#""message":"subscribed to: T.*""#), "{ack}");
    let mut symbols = std::collections::HashSet::new();
    while symbols.len() < 10 {
        let frame = helpers::next_text(&mut first).await;
        let events: Vec<serde_json::Value> = serde_json::from_str(&frame).unwrap();
        for e in events {
            assert_eq!(e["ev"], "T");
            assert!(e["s"].as_u64().unwrap() > 0);
            assert!(e["t"].as_i64().unwrap() > 1_700_000_000_000);
            symbols.insert(e["sym"].as_str().unwrap().to_string());
        }
    }

    // A second connection with the same key evicts the first.
    let (mut second, _) = tokio_tungstenite::connect_async(sim.url()).await.unwrap();
    helpers::next_message(&mut second).await;
    second
        .send(Message::text(r#"{"action":"auth","params":"good"}"#))
        .await
        .unwrap();
    let mut evicted = false;
    let read = tokio::time::timeout(SECS, async {
        while let Some(Ok(msg)) = first.next().await {
            if let Message::Text(t) = msg {
                if t.contains("max_connections") {
                    evicted = true;
                }
            }
        }
    });
    read.await.expect("the evicted connection was never closed");
    assert!(evicted, "the first connection was not told max_connections");
    assert_eq!(SimulatorStats::get(&sim.stats().evictions), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_process_exits_non_zero_on_a_wrong_key_without_leaking_it() {
    let mut cfg = config(5, 100.0, 1);
    cfg.key = Some("the-right-key".into());
    let sim = helpers::simulator(cfg).await;
    let url = sim.url();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = helpers::tickstock_bin()
            .env("MASSIVE_API_KEY", "wrong-key-987654")
            .args(["ingest", "--massive-url", &url, "--symbols", "AAPL,MSFT"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("ingest kept running after auth_failed");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "exit status {}", out.status);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains("wrong-key-987654"), "the key leaked: {text}");
    assert_eq!(
        SimulatorStats::get(&sim.stats().auth_failed),
        1,
        "no retry after auth_failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_declared_dead_and_replaced() {
    // A server that completes the handshake, then never sends another byte
    // (it does not even read, so pings go unanswered).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/stocks", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            ws.send(Message::text(
                r#"[{"ev":"status","status":"connected","message":"Connected Successfully"}]"#,
            ))
            .await
            .unwrap();
            ws.next().await; // the auth
            ws.send(Message::text(
                r#"[{"ev":"status","status":"auth_success","message":"authenticated"}]"#,
            ))
            .await
            .unwrap();
            held.push(ws); // silent from now on
        }
    });
    let mut timing = helpers::fast_timing();
    timing.ping_every = Duration::from_millis(100);
    timing.read_deadline = Duration::from_millis(400);
    let feed = helpers::feed(&url, "k", vec!["T.AAPL".into()], timing, 16, 16);
    let stats = feed.stats.clone();
    wait_until("the silent session is replaced", SECS, || {
        FeedStats::get(&stats.authenticated) >= 2
    })
    .await;
    assert!(accepted.load(Ordering::Relaxed) >= 2);
    assert!(FeedStats::get(&stats.reconnects) >= 1);
    feed.cancel.cancel();
}
