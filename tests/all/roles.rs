//! The whole data flow through a real Redis: the wire formats of
//! `docs/contract.md`, health cadence and accuracy, independent restarts,
//! a Redis outage, and shutdown.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tickstock::bus::{BusStats, Channels};

use crate::helpers::{
    self, assert_schema, redis_and_consumer, role, schema, wait_until, Child, Consumer,
    RedisServer, TestHost,
};

const SECS: Duration = Duration::from_secs(30);

fn rfc3339(v: &serde_json::Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(
        v.as_str().unwrap_or_else(|| panic!("{v} is not a string")),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_matches_the_contract_and_schemas() {
    let (_redis, ch, consumer) = helpers::redis_and_consumer("contract").await;
    let config = helpers::config(
        ch.prefix(),
        Some(_redis.url()),
        12,
        Duration::from_millis(1000),
    );
    let host = TestHost::start(&config).await;
    wait_until(
        "two health events, ticks, feed and plugin status",
        SECS,
        || {
            consumer.count(&ch.health()) >= 2
                && consumer.count(&ch.ticks()) >= 100
                && consumer.count(&ch.feed()) >= 1
                && consumer.count(&ch.plugins()) >= 2
        },
    )
    .await;
    // The status API, as an old dashboard reads it.
    let status = helpers::status(&host).await;
    host.stop().await;
    wait_until("session_stopped", SECS, || {
        consumer.count(&ch.session_stopped()) == 1
    })
    .await;

    let tick_schema = schema("market_tick.json");
    for t in consumer.on(&ch.ticks()) {
        assert_schema(&tick_schema, &t.json);
        assert!(
            t.json["volume"].is_u64(),
            "volume must be an integer: {}",
            t.json
        );
        let ts = t.json["timestamp"].as_i64().unwrap();
        assert!(
            ts > 1_600_000_000_000 && ts < 4_000_000_000_000,
            "not Unix ms: {ts}"
        );
        assert_eq!(t.json["source"], "massive");
        assert_eq!(t.json["type"], "market_tick");
    }
    let started = consumer.on(&ch.session_started());
    assert_eq!(started.len(), 1);
    let started = &started[0].json;
    assert_schema(&schema("session_started.json"), started);
    assert_eq!(
        started["session"]["symbol_count"], 12,
        "the real symbol count"
    );
    assert_eq!(started["session"]["universe"], "custom");
    rfc3339(&started["session"]["start_time"]);
    let sid = started["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(uuid::Uuid::parse_str(&sid).unwrap().get_version_num(), 4);

    let health_schema = schema("streaming_health.json");
    for h in consumer.on(&ch.health()) {
        assert_schema(&health_schema, &h.json);
        assert_eq!(h.json["health"]["session_id"], sid.as_str());
        assert!(h.json["health"]["active_symbols"].is_u64());
        assert!(h.json["health"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
    }

    let stopped = &consumer.on(&ch.session_stopped())[0].json;
    assert_schema(&schema("session_stopped.json"), stopped);
    assert_eq!(stopped["session"]["session_id"], sid.as_str());
    let (start, stop) = (
        rfc3339(&stopped["session"]["start_time"]),
        rfc3339(&stopped["session"]["stop_time"]),
    );
    let duration = stopped["session"]["duration_seconds"].as_f64().unwrap();
    assert!(((stop - start).num_milliseconds() as f64 / 1000.0 - duration).abs() < 0.01);
    assert!(stopped["session"]["ticks_processed"].as_u64().unwrap() >= 100);

    // TickStock's own channels: schema, and the host's own types read them back.
    let feed_schema = schema("feed_status.json");
    let feed = consumer.on(&ch.feed());
    for f in &feed {
        assert_schema(&feed_schema, &f.json);
        serde_json::from_value::<tickstock::events::FeedStatus>(f.json.clone()).unwrap();
    }
    assert!(
        feed.iter().any(|f| f.json["connected"] == true),
        "no feed_status said connected"
    );
    let plugin_schema = schema("plugin_event.json");
    let mut kinds = HashSet::new();
    for p in consumer.on(&ch.plugins()) {
        assert_schema(&plugin_schema, &p.json);
        match serde_json::from_value(p.json.clone()).unwrap() {
            tickstock::events::PluginEvent::PluginStatus(status) => {
                kinds.insert(status.kind.to_string());
            }
            other => panic!("only status events expected, got {other:?}"),
        }
    }
    assert_eq!(kinds.len(), 2, "plugin_status of both kinds: {kinds:?}");

    assert_schema(&schema("status_response.json"), &status);
    assert_eq!(status["status"], "online", "{status}");
    assert_eq!(status["session"]["session_id"], sid.as_str());
    assert_eq!(
        status["health"]["data_flow"]["ticks_per_second"],
        status["health"]["ticks_per_second"]
    );
    assert!(
        status["subscriber_stats"]["events_received"]
            .as_u64()
            .unwrap()
            >= 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_health_event_per_interval_matching_the_published_ticks() {
    let (_redis, ch, consumer) = helpers::redis_and_consumer("cadence").await;
    let config = helpers::config(
        ch.prefix(),
        Some(_redis.url()),
        40,
        Duration::from_millis(1000),
    );
    let host = TestHost::start(&config).await;
    wait_until("six health events", SECS, || {
        consumer.count(&ch.health()) >= 6
    })
    .await;
    host.stop().await;

    let health = consumer.on(&ch.health());
    let ticks = consumer.on(&ch.ticks());
    // Exactly one event per interval: consecutive events are one interval
    // apart (never two in the same interval, never a gap), with one session.
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = health
        .iter()
        .map(|h| rfc3339(&h.json["timestamp"]))
        .collect();
    for w in times.windows(2) {
        let gap = (w[1] - w[0]).num_milliseconds();
        assert!(
            (500..=1500).contains(&gap),
            "health events {gap} ms apart: {times:?}"
        );
    }
    let sessions: HashSet<_> = health
        .iter()
        .map(|h| h.json["health"]["session_id"].to_string())
        .collect();
    assert_eq!(sessions.len(), 1);

    // Each event's window is the second before it; compare with the ticks
    // this consumer saw in that second (both are subscribers of the same
    // channel, so only ticks right at the edges can differ).
    for h in health.iter().skip(2) {
        let window: Vec<&helpers::Seen> = ticks
            .iter()
            .filter(|t| t.at <= h.at && t.at > h.at - Duration::from_millis(1000))
            .collect();
        let symbols: HashSet<&str> = window
            .iter()
            .map(|t| t.json["symbol"].as_str().unwrap())
            .collect();
        let reported_tps = h.json["health"]["ticks_per_second"].as_f64().unwrap();
        let reported_active = h.json["health"]["active_symbols"].as_u64().unwrap() as usize;
        let seen = window.len() as f64;
        assert!(
            (reported_tps - seen).abs() <= seen * 0.1 + 5.0,
            "tps {reported_tps} vs {seen} ticks seen in the window"
        );
        assert!(
            reported_active.abs_diff(symbols.len()) <= 3,
            "active {reported_active} vs {} symbols seen",
            symbols.len()
        );
        assert!(reported_active > 5, "only {reported_active} active symbols");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_degrades_health_and_publishing_resumes() {
    let mut redis = RedisServer::start();
    let prefix = helpers::prefix("outage");
    let ch = Channels::new(prefix.clone());
    let consumer = Consumer::start(&redis.url(), &prefix).await;
    let mut config = helpers::config(&prefix, Some(redis.url()), 10, Duration::from_millis(500));
    config.publish_buffer = 300;
    let host = TestHost::start(&config).await;
    wait_until("ticks flowing", SECS, || consumer.count(&ch.ticks()) >= 100).await;

    redis.kill();
    let stats = host.bus.stats().clone();
    wait_until("the bus notices", SECS, || !stats.is_connected()).await;
    // Not ready while the bus is down.
    let ready = reqwest::get(format!("http://{}/readyz", host.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["bus_connected"], false, "{body}");
    // Long enough for the 300-message buffer to overflow at 300 ticks/s.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        BusStats::get(&stats.ticks_dropped) > 0,
        "nothing dropped during a 2.5 s outage"
    );
    redis.restart();
    wait_until("the bus reconnects", SECS, || stats.is_connected()).await;
    let before = consumer.count(&ch.ticks());
    wait_until("ticks resume", SECS, || {
        consumer.count(&ch.ticks()) > before + 100
    })
    .await;
    // A health event published during or right after the outage says so.
    wait_until("degraded health seen", SECS, || {
        consumer.on(&ch.health()).iter().any(|h| {
            h.json["health"]["status"] == "degraded"
                && h.json["health"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("event bus unreachable")
        })
    })
    .await;
    // And health returns to healthy once the bus is back.
    consumer
        .wait_for_new(&ch.health(), "healthy again", SECS, |h| {
            h["health"]["status"] == "healthy"
        })
        .await;
    let pipeline = host.ingest.pipeline.clone();
    host.stop().await;
    // Every tick the normalizer produced was published, dropped (buffer
    // full), or in flight when the connection died (unconfirmed).
    let produced = pipeline.ticks.load(std::sync::atomic::Ordering::Relaxed);
    let published = BusStats::get(&stats.ticks_published);
    let dropped = BusStats::get(&stats.ticks_dropped);
    let unconfirmed = BusStats::get(&stats.ticks_unconfirmed);
    assert_eq!(
        produced,
        published + dropped + unconfirmed,
        "produced {produced} != published {published} + dropped {dropped} + unconfirmed {unconfirmed}"
    );
    assert_eq!(BusStats::get(&stats.refused), 0);
    assert!(BusStats::get(&stats.reconnects) >= 1);
}

/// A private Redis with a subscribed consumer, and `ingest` and `process`
/// (health every 0.5 s) as separate processes against it.
async fn split_roles(test: &str) -> (RedisServer, Channels, Consumer, Child, Child) {
    let (redis, ch, consumer) = helpers::redis_and_consumer(test).await;
    let ingest = role("ingest", &redis.url(), ch.prefix(), &[]);
    let process = role(
        "process",
        &redis.url(),
        ch.prefix(),
        &["--health-interval", "0.5"],
    );
    (redis, ch, consumer, ingest, process)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_process_restart_independently_and_sigterm_stops_the_session() {
    let (redis, ch, consumer, _ingest, mut process) = split_roles("roles").await;
    let prefix = ch.prefix().to_string();
    wait_until("ticks and health", SECS, || {
        consumer.count(&ch.ticks()) > 50 && consumer.count(&ch.health()) >= 2
    })
    .await;

    // Killing process does not stop ingest.
    process.signal("-KILL");
    process.wait_exit(SECS);
    let before = consumer.count(&ch.ticks());
    wait_until("ticks keep flowing without process", SECS, || {
        consumer.count(&ch.ticks()) > before + 50
    })
    .await;

    // A restarted process starts a new session and reports again.
    let mut process = role(
        "process",
        &redis.url(),
        &prefix,
        &["--health-interval", "0.5"],
    );
    wait_until("a second session", SECS, || {
        consumer.count(&ch.session_started()) == 2
    })
    .await;
    let sessions: Vec<String> = consumer
        .on(&ch.session_started())
        .iter()
        .map(|s| {
            s.json["session"]["session_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_ne!(sessions[0], sessions[1]);
    consumer
        .wait_for_new(&ch.health(), "health from the new session", SECS, |h| {
            h["health"]["session_id"] == sessions[1].as_str()
        })
        .await;

    // Killing ingest does not stop process: health keeps coming.
    drop(_ingest);
    let h = consumer.count(&ch.health());
    wait_until("health continues without ingest", SECS, || {
        consumer.count(&ch.health()) >= h + 3
    })
    .await;
    // And a restarted ingest feeds the same session: its health shows the
    // ticks flowing again, healthy, and no new session started.
    let _ingest = role("ingest", &redis.url(), &prefix, &[]);
    let t = consumer.count(&ch.ticks());
    wait_until("ticks again", SECS, || consumer.count(&ch.ticks()) > t + 50).await;
    let same_session = "the same session's health sees the ticks";
    consumer
        .wait_for_new(&ch.health(), same_session, SECS, |e| {
            let health = &e["health"];
            health["session_id"] == sessions[1].as_str()
                && health["status"] == "healthy"
                && health["ticks_per_second"].as_f64().unwrap_or(0.0) > 0.0
        })
        .await;
    assert_eq!(
        consumer.count(&ch.session_started()),
        2,
        "a new session started"
    );

    // SIGTERM publishes session_stopped before the process exits.
    process.signal("-TERM");
    let status = process.wait_exit(SECS);
    assert!(status.success(), "process exited with {status}");
    let stopped = consumer.on(&ch.session_stopped());
    // The event was published before exit; give the consumer a moment to read it.
    let stopped = if stopped.is_empty() {
        wait_until("session_stopped", Duration::from_secs(5), || {
            consumer.count(&ch.session_stopped()) == 1
        })
        .await;
        consumer.on(&ch.session_stopped())
    } else {
        stopped
    };
    assert_eq!(stopped.len(), 1);
    assert_eq!(
        stopped[0].json["session"]["session_id"],
        sessions[1].as_str()
    );
    assert!(
        stopped[0].json["session"]["ticks_processed"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_command_runs_the_whole_flow_without_redis_or_key() {
    let port = helpers::free_port();
    // No subcommand, no Redis, no key: what `cargo run --release` runs. The
    // address and interval come from the environment, not arguments.
    let mut cmd = helpers::tickstock_bin();
    cmd.env("TICKSTOCK_LISTEN", format!("127.0.0.1:{port}"))
        .env("TICKSTOCK_HEALTH_INTERVAL", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _child = Child::spawn(cmd);
    let url = format!("http://127.0.0.1:{port}/streaming/api/status");
    let deadline = Instant::now() + SECS;
    let status = loop {
        if let Ok(resp) = reqwest::get(&url).await {
            let status: serde_json::Value = resp.json().await.unwrap();
            if status["status"] == "online"
                && status["health"]["ticks_per_second"].as_f64().unwrap_or(0.0) > 0.0
            {
                break status;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the default command never went online"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["session"]["universe"], "market_leaders:top_500");
    assert_eq!(status["session"]["symbol_count"], 500);
    assert_eq!(status["feed"]["connected"], true);
}

/// A Redis bus of its own on `redis`, buffering up to `buffer` messages.
fn redis_bus(redis: &RedisServer, ch: &Channels, buffer: usize) -> tickstock::bus::Bus {
    tickstock::bus::Bus::redis(
        &tickstock::secret::Secret::new(redis.url()),
        ch.clone(),
        buffer,
    )
    .unwrap()
}

/// Publishes `{"n":N}` on the ticks channel for every N of `numbers`; none
/// may be dropped.
fn publish_numbered(bus: &tickstock::bus::Bus, numbers: std::ops::Range<u64>) {
    let ticks = bus.ticks_channel().clone();
    for n in numbers {
        assert!(bus.publish(&ticks, format!("{{\"n\":{n}}}")), "dropped {n}");
    }
}

/// The `n` of every message the consumer saw on the ticks channel, in
/// arrival order.
fn numbers_seen(consumer: &Consumer, ch: &Channels) -> Vec<u64> {
    consumer
        .on(&ch.ticks())
        .iter()
        .map(|m| m.json["n"].as_u64().unwrap())
        .collect()
}

/// A burst far larger than one pipeline goes out as several pipelines in
/// flight at once: every message must still arrive, once, in the order it
/// was offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_the_redis_bus_arrives_complete_and_in_order() {
    // Far more batches than tokio's cooperative budget covers (~60), so a
    // send that the budget postpones would show as a reordering.
    const N: u64 = 200_000;
    let (redis, ch, consumer) = redis_and_consumer("burst").await;
    let bus = redis_bus(&redis, &ch, N as usize);
    publish_numbered(&bus, 0..N);
    wait_until("the whole burst delivered", SECS, || {
        consumer.count(&ch.ticks()) as u64 >= N
    })
    .await;
    let seen = numbers_seen(&consumer, &ch);
    assert_eq!(seen.len() as u64, N);
    if let Some(i) = (1..seen.len()).find(|&i| seen[i] != seen[i - 1] + 1) {
        panic!("out of order at {i}: {} then {}", seen[i - 1], seen[i]);
    }
    let stats = bus.stats();
    assert_eq!(BusStats::get(&stats.ticks_published), N);
    assert_eq!(BusStats::get(&stats.ticks_unconfirmed), 0);
    assert_eq!(BusStats::get(&stats.dropped), 0);
    assert_eq!(BusStats::get(&stats.refused), 0);
    assert_eq!(stats.in_flight(), 0);
}

/// A message offered after Redis died, on a connection the publisher has
/// not yet seen fail, never left the host: it must wait for the reconnect
/// and be published then, not be written off as unconfirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_offered_after_redis_died_are_published_after_the_reconnect() {
    let (mut redis, ch, consumer) = redis_and_consumer("resend").await;
    let bus = redis_bus(&redis, &ch, 1_000);
    publish_numbered(&bus, 0..1);
    wait_until("the first message", SECS, || {
        consumer.count(&ch.ticks()) == 1
    })
    .await;
    redis.kill();
    // Long enough for the connection's reader to see the socket close.
    tokio::time::sleep(Duration::from_secs(1)).await;
    publish_numbered(&bus, 1..11);
    let stats = bus.stats().clone();
    wait_until("the publisher notices", SECS, || !stats.is_connected()).await;
    redis.restart();
    wait_until("all eleven delivered", SECS, || {
        consumer.count(&ch.ticks()) == 11
    })
    .await;
    assert_eq!(numbers_seen(&consumer, &ch), (0..=10).collect::<Vec<_>>());
    assert_eq!(BusStats::get(&stats.ticks_unconfirmed), 0);
    assert_eq!(BusStats::get(&stats.ticks_published), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_redis_refuses_costs_only_its_own_messages() {
    // An ACL that grants the host every channel but `PREFIX:feed`, and a
    // second user (the test's subscriber) every channel.
    let prefix = helpers::prefix("acl");
    let (ticks, streaming) = (
        format!("&{prefix}:market:*"),
        format!("&{prefix}:streaming:*"),
    );
    let (plugins, letters) = (
        format!("&{prefix}:plugins"),
        format!("&{prefix}:deadletter"),
    );
    let redis = RedisServer::start_with(&[
        "--user",
        "default",
        "on",
        "nopass",
        "~*",
        "resetchannels",
        &ticks,
        &streaming,
        &plugins,
        &letters,
        "+@all",
        "--user",
        "watcher",
        "on",
        "nopass",
        "~*",
        "&*",
        "+@all",
    ]);
    let watcher_url = format!("redis://watcher:x@127.0.0.1:{}/", redis.port);
    let consumer = Consumer::start(&watcher_url, &prefix).await;
    let ch = Channels::new(prefix.clone());
    let sim = helpers::recording_simulator(1_000.0, &helpers::SYMBOLS).await;
    let config = helpers::sim_config(&sim, &prefix, Some(redis.url()), &helpers::SYMBOLS);
    let host = TestHost::start(&config).await;
    wait_until("ticks and health flowing", SECS, || {
        consumer.count(&ch.ticks()) > 300 && consumer.count(&ch.health()) >= 1
    })
    .await;
    helpers::assert_delivered_exactly_once(&sim, &consumer, &ch.ticks()).await;
    let stats = host.bus.stats().clone();
    let refused = stats.refused_by_reason();
    assert!(
        refused.get("NOPERM").is_some_and(|n| *n >= 1),
        "{refused:?}"
    );
    assert_eq!(
        consumer.count(&ch.feed()),
        0,
        "the ACL let a feed event through"
    );
    assert_eq!(BusStats::get(&stats.ticks_refused), 0);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stall_past_the_command_timeout_publishes_no_tick_twice() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("stall").await;
    let sim = helpers::recording_simulator(1_000.0, &helpers::SYMBOLS).await;
    let config = helpers::sim_config(&sim, ch.prefix(), Some(redis.url()), &helpers::SYMBOLS);
    let host = TestHost::start(&config).await;
    wait_until("ticks flowing", SECS, || consumer.count(&ch.ticks()) > 300).await;
    // Every command of every client waits 6 s: longer than the publisher's
    // 5 s command timeout, with a pipeline in flight.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_connection().unwrap();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(6_000)
        .arg("ALL")
        .query::<()>(&mut admin)
        .unwrap();
    let stats = host.bus.stats().clone();
    wait_until("a batch counted unconfirmed", SECS, || {
        BusStats::get(&stats.ticks_unconfirmed) > 0
    })
    .await;
    let before = consumer.count(&ch.ticks());
    wait_until("ticks flow again", SECS, || {
        consumer.count(&ch.ticks()) > before + 300
    })
    .await;
    sim.shutdown().await;
    let sent = sim.stats().sent_trades();
    let lost = || {
        BusStats::get(&stats.ticks_unconfirmed)
            + BusStats::get(&stats.ticks_dropped)
            + host
                .feed
                .frames_dropped_queue_full
                .load(std::sync::atomic::Ordering::Relaxed)
                * 10
    };
    // Every trade sent is either on the channel or counted lost.
    wait_until("every trade published or counted", SECS, || {
        consumer.count(&ch.ticks()) as u64 + lost() >= sent.len() as u64
    })
    .await;
    let got = consumer.on(&ch.ticks());
    // What arrived is the simulator's log with gaps: never a tick twice,
    // never out of order.
    let mut next = 0;
    for (i, g) in got.iter().enumerate() {
        let key = (
            g.json["symbol"].as_str().unwrap().to_string(),
            g.json["timestamp"].as_i64().unwrap(),
            g.json["price"].as_f64().unwrap(),
            g.json["volume"].as_u64().unwrap(),
        );
        let found = sent[next..]
            .iter()
            .position(|s| (s.symbol.clone(), s.timestamp, s.price, s.size) == key);
        let Some(at) = found else {
            panic!("tick {i} {key:?} is a duplicate or out of order");
        };
        next += at + 1;
    }
    let missing = (sent.len() - got.len()) as u64;
    let lost = lost();
    assert!(
        missing <= lost,
        "{missing} ticks missing, but only {lost} counted as unconfirmed or dropped"
    );
    host.stop().await;
}

/// The status document of a dashboard on `port`, once it answers.
async fn status_at(port: u16) -> Option<serde_json::Value> {
    let url = format!("http://127.0.0.1:{port}/streaming/api/status");
    reqwest::get(url).await.ok()?.json().await.ok()
}

/// Waits until the dashboard on `port` shows session `sid` online.
async fn wait_online(port: u16, sid: &str) {
    let deadline = Instant::now() + SECS;
    loop {
        if let Some(st) = status_at(port).await {
            if st["status"] == "online" && st["session"]["session_id"] == sid {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never showed session {sid} online"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_that_starts_late_or_restarts_shows_the_live_session() {
    let (redis, ch, consumer, _ingest, mut process) = split_roles("late").await;
    let prefix = ch.prefix().to_string();
    wait_until("the session started and health flows", SECS, || {
        consumer.count(&ch.session_started()) == 1 && consumer.count(&ch.health()) >= 2
    })
    .await;
    let sid = consumer.on(&ch.session_started())[0].json["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let dashboard = |port: u16| {
        let listen = format!("127.0.0.1:{port}");
        role(
            "dashboard",
            &redis.url(),
            &prefix,
            &["--listen", &listen, "--health-interval", "0.5"],
        )
    };
    // Started after the session began: it never sees session_started.
    let port = helpers::free_port();
    let first = dashboard(port);
    wait_online(port, &sid).await;
    drop(first);
    // Restarted mid-session: the same.
    let port = helpers::free_port();
    let second = dashboard(port);
    wait_online(port, &sid).await;
    drop(second);

    // The session stops while no dashboard runs: a dashboard started
    // afterwards does not show it (or anything) online.
    process.signal("-TERM");
    assert!(process.wait_exit(SECS).success());
    wait_until("session_stopped", SECS, || {
        consumer.count(&ch.session_stopped()) == 1
    })
    .await;
    let port = helpers::free_port();
    let _third = dashboard(port);
    let deadline = Instant::now() + SECS;
    while status_at(port).await.is_none() {
        assert!(Instant::now() < deadline, "the dashboard did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        let st = status_at(port).await.unwrap();
        assert_eq!(st["status"], "offline", "{st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_under_load_publishes_every_tick_before_session_stopped() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("drain").await;
    let sim = helpers::simulator(tickstock::simulator::SimulatorConfig {
        rate: 20_000.0,
        batch: 50,
        universe: helpers::SYMBOLS.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await;
    let mut config = helpers::sim_config(&sim, ch.prefix(), Some(redis.url()), &helpers::SYMBOLS);
    // The budget counts from the stop, not from the start: run longer than
    // it, waiting on the host from the start as `tickstock run` does.
    config.shutdown_timeout = Duration::from_secs(2);
    let cancel = tokio_util::sync::CancellationToken::new();
    let host = tickstock::roles::Host::start(&config, cancel.clone())
        .await
        .unwrap();
    let (pipeline, bus) = (host.ingest.pipeline.clone(), host.bus.stats().clone());
    let waiting = tokio::spawn(host.wait());
    wait_until("ticks flowing fast", SECS, || {
        consumer.count(&ch.ticks()) > 20_000
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let stopping = Instant::now();
    cancel.cancel();
    tokio::time::timeout(SECS, waiting)
        .await
        .expect("the host did not stop")
        .unwrap()
        .unwrap();
    assert!(
        stopping.elapsed() < SECS,
        "took {:?} to stop",
        stopping.elapsed()
    );
    wait_until("session_stopped", SECS, || {
        consumer.count(&ch.session_stopped()) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Where every tick went, by the host's own counters.
    let produced = pipeline.ticks.load(std::sync::atomic::Ordering::Relaxed);
    let published = BusStats::get(&bus.ticks_published);
    let lost = BusStats::get(&bus.ticks_dropped)
        + BusStats::get(&bus.ticks_refused)
        + BusStats::get(&bus.ticks_unconfirmed);
    assert_eq!(
        produced,
        published + lost,
        "produced {produced}, published {published}, lost {lost}"
    );
    // Nothing after session_stopped, and it counts what was published.
    let seen = consumer.all();
    let stop_at = seen
        .iter()
        .position(|m| m.channel == ch.session_stopped())
        .unwrap();
    let late = seen[stop_at..]
        .iter()
        .filter(|m| m.channel == ch.ticks())
        .count();
    assert_eq!(late, 0, "{late} ticks published after session_stopped");
    let processed = seen[stop_at].json["session"]["ticks_processed"]
        .as_u64()
        .unwrap();
    assert_eq!(
        processed, published,
        "session_stopped counts what was published"
    );
    assert_eq!(consumer.count(&ch.ticks()) as u64, published);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_redis_drops_is_renewed_and_reported() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("cut").await;
    let config = helpers::config(
        ch.prefix(),
        Some(redis.url()),
        12,
        Duration::from_millis(500),
    );
    let host = TestHost::start(&config).await;
    wait_until("health flowing", SECS, || consumer.count(&ch.health()) >= 2).await;
    // What Redis does to a subscriber over its output-buffer limit.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_connection().unwrap();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query::<()>(&mut admin)
        .unwrap();
    let stats = host.bus.stats().clone();
    wait_until("the loss is counted", SECS, || {
        BusStats::get(&stats.subscriptions_lost) >= 1
    })
    .await;
    wait_until("a health event reports it", SECS, || {
        consumer.on(&ch.health()).iter().any(|h| {
            h.json["health"]["status"] == "degraded"
                && h.json["health"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Redis dropped")
        })
    })
    .await;
    // Renewed: the process role counts ticks again.
    let before = host
        .process
        .stats
        .ticks_processed
        .load(std::sync::atomic::Ordering::Relaxed);
    wait_until("ticks processed again", SECS, || {
        host.process
            .stats
            .ticks_processed
            .load(std::sync::atomic::Ordering::Relaxed)
            > before + 20
    })
    .await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_process_role_sees_the_feed_through_the_ingest_role() {
    let (_redis, ch, consumer, ingest, _process) = split_roles("remote-feed").await;
    // Healthy, with the feed state learned from `PREFIX:feed`.
    wait_until("healthy health from the split roles", SECS, || {
        consumer
            .on(&ch.health())
            .iter()
            .any(|h| h.json["health"]["status"] == "healthy")
    })
    .await;
    // Without the ingest role, its feed state goes stale and health says so.
    drop(ingest);
    wait_until("the missing ingest role reported", SECS, || {
        consumer.on(&ch.health()).iter().any(|h| {
            h.json["health"]["status"] != "healthy"
                && h.json["health"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no feed status from the ingest role")
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_roles_each_install_their_own_kind_from_the_plugin_directory() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("split-dir").await;
    // One directory shared by both roles, as on a host that runs them side
    // by side: each installs only the kind it runs.
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let _ingest = role(
        "ingest",
        &redis.url(),
        ch.prefix(),
        &["--plugin-dir", dir_arg],
    );
    let _process = role(
        "process",
        &redis.url(),
        ch.prefix(),
        &["--health-interval", "0.5", "--plugin-dir", dir_arg],
    );
    wait_until("ticks and health", SECS, || {
        consumer.count(&ch.ticks()) > 50 && consumer.count(&ch.health()) >= 2
    })
    .await;
    assert!(
        consumer
            .on(&ch.ticks())
            .iter()
            .all(|t| t.json.get("sequence").is_none()),
        "the 1.0.0 normalizer has no sequence field"
    );

    std::fs::write(
        dir.path().join("normalizer.wasm"),
        helpers::guests::normalizer_next(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("health.wasm"),
        helpers::guests::health_next(),
    )
    .unwrap();
    consumer
        .wait_for_new(&ch.ticks(), "the ingest role's new normalizer", SECS, |t| {
            t.get("sequence").is_some()
        })
        .await;
    consumer
        .wait_for_new(&ch.health(), "the process role's new health", SECS, |h| {
            h["health"].get("symbols_seen_total").is_some()
        })
        .await;
    // Each role announces its own install (after the swap, so the new
    // output may come first), and neither tried the other kind.
    let installed = |kind: &str| {
        consumer
            .on(&ch.plugins())
            .iter()
            .filter(|e| e.json["type"] == "plugin_installed" && e.json["kind"] == kind)
            .count()
    };
    wait_until("both installs announced", SECS, || {
        installed("normalizer") >= 1 && installed("health") >= 1
    })
    .await;
    assert_eq!((installed("normalizer"), installed("health")), (1, 1));
    let refused: Vec<serde_json::Value> = consumer
        .on(&ch.plugins())
        .into_iter()
        .filter(|e| e.json["type"] == "plugin_refused")
        .map(|e| e.json)
        .collect();
    assert!(
        refused.is_empty(),
        "a role tried the other kind: {refused:?}"
    );
}

/// A host with Redis and ticks flowing, whose publishing `kill` ends as a
/// panic would: the host must stop by itself with an error saying why
/// (a non-zero exit for the binary), not run on dropping every tick.
async fn a_dead_publisher_stops_the_host(test: &str, kill: fn(&TestHost), why: &str) {
    let (_redis, ch, consumer) = helpers::redis_and_consumer(test).await;
    let sim = helpers::recording_simulator(1_000.0, &helpers::SYMBOLS).await;
    let config = helpers::sim_config(&sim, ch.prefix(), Some(_redis.url()), &helpers::SYMBOLS);
    let host = TestHost::start(&config).await;
    wait_until("ticks flowing", SECS, || consumer.count(&ch.ticks()) > 100).await;
    kill(&host);
    let ended = host.stopped_by_itself(SECS).await;
    let err = format!(
        "{:#}",
        ended.expect_err("the host went on without a publisher")
    );
    assert!(err.contains(why), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_publisher_stops_the_host_with_an_error() {
    a_dead_publisher_stops_the_host(
        "dead-redis-publisher",
        |host| host.bus.kill_publisher(),
        "the Redis publisher stopped",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_tick_publisher_stops_the_pipeline_and_the_host_with_an_error() {
    a_dead_publisher_stops_the_host(
        "dead-tick-publisher",
        |host| host.ingest.kill_publisher(),
        "the normalization pipeline stopped",
    )
    .await;
}

#[cfg(target_os = "linux")]
#[test]
fn the_binary_sets_its_allocator_for_a_small_footprint() {
    // mimalloc's defaults took `ingest`'s peak RSS under overload to
    // 80-91 MiB (the bound is 64); the binary sets two options, by their
    // places in mimalloc's option list, before the allocator starts. Its
    // verbose start-up lists each option by name with its value.
    let out = helpers::tickstock_bin()
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .env_remove("MIMALLOC_ARENA_EAGER_COMMIT")
        .env_remove("MIMALLOC_PURGE_DELAY")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    for option in ["'arena_eager_commit': 0", "'purge_delay': 0"] {
        assert!(text.contains(option), "no {option} in:\n{text}");
    }
}
