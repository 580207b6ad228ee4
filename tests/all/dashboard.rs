//! The dashboard: the page in a real headless Chromium, `/metrics`, slow
//! and many WebSocket clients, readiness.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tickstock::bus::BusStats;
use tickstock::roles::Host;
use tickstock::web::state::EventKind;

use crate::helpers::{self, sample, scrape, wait_until, Child, TestHost};

const SECS: Duration = Duration::from_secs(30);

async fn host(name: &str) -> TestHost {
    let config = helpers::config(
        &helpers::prefix(name),
        None,
        30,
        Duration::from_millis(1000),
    );
    TestHost::start(&config).await
}

/// chromedriver on a free port, killed on drop with the Chromium it
/// started (also when a test fails before it closed its browser: Chromium
/// leaves chromedriver's process group, so it is found by its profile
/// directory, which names the port).
struct ChromeDriver {
    port: u16,
    _child: Child,
}

impl ChromeDriver {
    /// The browser's profile directory, unique to this driver.
    fn profile(&self) -> String {
        std::env::temp_dir()
            .join(format!("tickstock-test-chromium-{}", self.port))
            .display()
            .to_string()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The profile path as a whole argument: another driver's port is
        // not a prefix match.
        let pattern = format!("--user-data-dir={}( |$)", regex_escape(&self.profile()));
        let _ = std::process::Command::new("pkill")
            // `--`: the pattern starts with dashes, not an option.
            .args(["-KILL", "-f", "--", &pattern])
            .status();
        let _ = std::fs::remove_dir_all(self.profile());
    }
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = helpers::free_port();
        let mut cmd = std::process::Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        assert!(
            which("chromedriver"),
            "chromedriver must be installed (apt-get install chromium chromium-driver; .ci/run does it)"
        );
        ChromeDriver {
            port,
            _child: Child::spawn(cmd),
        }
    }
}

/// `text` with the characters an extended regular expression treats
/// specially escaped.
fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = r"\.^$|?*+()[]{}".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

async fn browser(driver: &ChromeDriver) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1400,1000", format!("--user-data-dir={}", driver.profile())],
        }),
    );
    let deadline = Instant::now() + SECS;
    loop {
        match fantoccini::ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
        {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start Chromium through chromedriver: {e}"),
        }
    }
}

/// The page ran without a JavaScript error (the page records them).
async fn assert_no_script_errors(client: &fantoccini::Client) {
    let errors = client
        .execute("return window.__errors;", vec![])
        .await
        .unwrap();
    assert_eq!(
        errors,
        serde_json::json!([]),
        "JavaScript errors on the page"
    );
}

async fn text(client: &fantoccini::Client, id: &str) -> String {
    client
        .find(fantoccini::Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn number(client: &fantoccini::Client, id: &str) -> f64 {
    text(client, id)
        .await
        .replace(',', "")
        .trim()
        .parse()
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_live_data_in_a_real_browser() {
    let host = host("browser").await;
    let driver = ChromeDriver::start();
    let client = browser(&driver).await;
    client
        .goto(&format!("http://{}/", host.addr))
        .await
        .unwrap();

    let session = host.process.session_id.clone();
    let deadline = Instant::now() + SECS;
    loop {
        let ok = text(&client, "session-id").await == session
            && ["HEALTHY", "DEGRADED", "healthy", "degraded"]
                .contains(&text(&client, "status").await.as_str())
            && number(&client, "active-symbols").await > 0.0
            && number(&client, "tps").await > 0.0
            && text(&client, "conn").await == "live"
            && text(&client, "api-status").await == "online";
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the session, status, symbols and rate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It updates by itself: the health timestamp changes without a reload.
    let first = text(&client, "health-age").await;
    let deadline = Instant::now() + SECS;
    while text(&client, "health-age").await == first {
        assert!(Instant::now() < deadline, "the page did not update");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The other panels fill in too.
    let deadline = Instant::now() + SECS;
    loop {
        let plugins = client
            .find_all(fantoccini::Locator::Css("#plugins tbody tr"))
            .await
            .unwrap()
            .len();
        let top = client
            .find_all(fantoccini::Locator::Css("#top-symbols tbody tr"))
            .await
            .unwrap()
            .len();
        let metrics = client
            .find_all(fantoccini::Locator::Css("#metrics tbody tr"))
            .await
            .unwrap()
            .len();
        if plugins == 2 && top > 0 && metrics > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "panels: plugins {plugins}, top {top}, metrics {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The label follows the status API's rule, not "any health event":
    // once the session stopped it reads offline although health events
    // (of the stopped session) keep arriving.
    let stopped = serde_json::json!({
        "type": "streaming_session_stopped",
        "session": {"session_id": session, "status": "stopped"},
        "timestamp": chrono::Utc::now().to_rfc3339(),
    });
    host.bus
        .publish_to(&host.bus.channels().session_stopped(), stopped.to_string());
    let deadline = Instant::now() + SECS;
    while text(&client, "api-status").await != "offline" {
        assert!(
            Instant::now() < deadline,
            "the label did not follow the session's stop"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And it stays so while health events (one a second) keep arriving.
    let health_seen = host.dashboard.counts.health.load(Ordering::Relaxed);
    let deadline = Instant::now() + SECS;
    while host.dashboard.counts.health.load(Ordering::Relaxed) < health_seen + 3 {
        assert!(Instant::now() < deadline, "health events stopped");
        assert_eq!(
            text(&client, "api-status").await,
            "offline",
            "a health event turned the label back online"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_no_script_errors(&client).await;

    let png = client.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dashboard.png"), &png).unwrap();
    assert!(png.len() > 10_000);

    client.close().await.unwrap();
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_traffic() {
    let host = host("metrics").await;
    wait_until("ticks", SECS, || {
        BusStats::get(&host.bus.stats().ticks_published) > 50
    })
    .await;
    let first = scrape(host.addr).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = scrape(host.addr).await;
    for name in [
        "tickstock_ticks_published_total",
        "tickstock_ticks_received_total",
        "tickstock_frames_received_total",
        "tickstock_ticks_processed_total",
    ] {
        assert!(
            sample(&second, name) > sample(&first, name),
            "{name} did not move: {} -> {}",
            sample(&first, name),
            sample(&second, name)
        );
    }
    assert_eq!(sample(&second, "tickstock_feed_connected"), 1.0);
    // The feed reader's waits for room are exported (none at this rate).
    for name in [
        "tickstock_feed_queue_waits_total",
        "tickstock_feed_queue_wait_microseconds_total",
    ] {
        assert!(
            second.samples.iter().any(|s| s.metric == name),
            "no {name} on /metrics"
        );
    }
    assert!(
        sample(&second, "tickstock_events_skipped_total") > 0.0,
        "status events are counted as skipped"
    );
    // Plugin calls per plugin and version, and the latency histogram.
    let calls: Vec<_> = second
        .samples
        .iter()
        .filter(|s| s.metric == "tickstock_plugin_calls_total")
        .collect();
    assert_eq!(calls.len(), 2);
    assert!(calls
        .iter()
        .any(|s| s.labels.get("kind") == Some("normalizer")
            && s.labels.get("version") == Some("1.0.0")));
    assert!(
        second
            .samples
            .iter()
            .any(|s| s.metric == "tickstock_plugin_call_duration_seconds"),
        "no latency histogram"
    );
    // Readiness and liveness.
    let ready = reqwest::get(format!("http://{}/readyz", host.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["feed_connected"], true);
    assert_eq!(
        reqwest::get(format!("http://{}/healthz", host.addr))
            .await
            .unwrap()
            .status(),
        200
    );
    host.stop().await;
}

async fn ws_client(
    addr: std::net::SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_slows_nobody() {
    let host = host("slowws").await;
    let _slow = ws_client(host.addr).await; // connected, never read
    let mut fast = ws_client(host.addr).await;
    let snapshot: serde_json::Value =
        serde_json::from_str(&helpers::next_text(&mut fast).await).unwrap();
    assert_eq!(snapshot["kind"], "snapshot");

    // Flood the dashboard with large events: far more than the slow
    // client's queue and socket buffers hold.
    let big = "x".repeat(16 * 1024);
    let ticks_before = BusStats::get(&host.bus.stats().ticks_published);
    let n = 6_000;
    for i in 0..n {
        host.dashboard.apply(
            EventKind::Feed,
            &serde_json::json!({"type": "feed_status", "seq": i, "pad": big}).to_string(),
        );
    }
    // The fast client keeps getting the latest state (a snapshot if it fell
    // behind), up to the last event.
    let deadline = Instant::now() + SECS;
    loop {
        let msg: serde_json::Value =
            serde_json::from_str(&helpers::next_text(&mut fast).await).unwrap();
        let seq = if msg["kind"] == "snapshot" {
            &msg["status"]["feed"]["seq"]
        } else {
            &msg["event"]["seq"]
        };
        if seq.as_u64() == Some(n as u64 - 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fast client never saw the last event"
        );
    }
    // Ticks kept flowing to the bus meanwhile.
    wait_until("ticks keep flowing", SECS, || {
        BusStats::get(&host.bus.stats().ticks_published) > ticks_before + 100
    })
    .await;
    // The slow client fell behind: its backlog was skipped, or (once a
    // send has waited SEND_TIMEOUT) it was dropped. Either is counted.
    let deadline = Instant::now() + SECS;
    loop {
        let metrics = scrape(host.addr).await;
        let skipped = sample(&metrics, "tickstock_ws_events_lagged_total")
            + sample(&metrics, "tickstock_ws_clients_dropped_total");
        if skipped > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow client was neither skipped nor dropped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_all_get_live_health() {
    let host = host("manyws").await;
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(ws_client(host.addr).await);
    }
    wait_until("200 clients counted", SECS, || {
        host_ws_clients(&host) == 200
    })
    .await;
    let mut tasks = Vec::new();
    for mut c in clients {
        tasks.push(tokio::spawn(async move {
            // Each client sees a snapshot first, then health events.
            let mut next = async || -> serde_json::Value {
                let text = helpers::next_text(&mut c).await;
                serde_json::from_str(&text).unwrap()
            };
            let first = next().await;
            loop {
                let msg = next().await;
                if msg["kind"] == "health" {
                    return (first, msg);
                }
            }
        }));
    }
    let session = host.process.session_id.clone();
    for t in tasks {
        let (first, health) = tokio::time::timeout(SECS, t).await.unwrap().unwrap();
        assert_eq!(first["kind"], "snapshot", "{first}");
        assert_eq!(
            health["event"]["health"]["session_id"],
            session.as_str(),
            "{health}"
        );
        assert_eq!(health["api_status"], "online", "{health}");
    }
    host.stop().await;
}

fn host_ws_clients(host: &Host) -> u64 {
    host.web.ws.clients.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_caps_clients_messages_and_origins() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut config = helpers::config(
        &helpers::prefix("wslimits"),
        None,
        10,
        Duration::from_millis(300),
    );
    config.ws.max_clients = 2;
    let host = TestHost::start(&config).await;
    let url = format!("ws://{}/ws", host.addr);
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // The page's own origin is welcome.
    let mut same = url.as_str().into_client_request().unwrap();
    let own = format!("http://{}", host.addr);
    same.headers_mut().insert("origin", own.parse().unwrap());
    let (mut b, _) = tokio_tungstenite::connect_async(same).await.unwrap();
    for ws in [&mut a, &mut b] {
        let first = tokio::time::timeout(SECS, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(first.into_text().unwrap().contains("\"snapshot\""));
    }

    // A third client is told why, and closed.
    let (mut c, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let closed = tokio::time::timeout(SECS, c.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Close(Some(frame)) = closed else {
        panic!("expected a close frame, got {closed:?}");
    };
    assert_eq!(u16::from(frame.code), 1013);
    assert!(
        frame.reason.contains("too many dashboard clients"),
        "{}",
        frame.reason
    );

    // A 10 MiB message closes its sender only.
    let _ = a.send(Message::text("x".repeat(10 << 20))).await;
    let a_end = tokio::time::timeout(SECS, async {
        loop {
            match a.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(a_end.is_ok(), "the oversized sender was not closed");
    let update = tokio::time::timeout(SECS, async {
        loop {
            let m = helpers::next_message(&mut b).await;
            if m.to_text().unwrap_or("").contains("\"health\"") {
                return;
            }
        }
    })
    .await;
    assert!(update.is_ok(), "the other client stopped getting events");

    // A page of another origin is refused.
    let mut foreign = url.as_str().into_client_request().unwrap();
    foreign
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(foreign).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let metrics = helpers::scrape(host.addr).await;
    let full = [("reason", "full")];
    assert_eq!(
        helpers::sample_with(&metrics, "tickstock_ws_clients_refused_total", &full),
        1.0
    );
    let origin = [("reason", "origin")];
    assert_eq!(
        helpers::sample_with(&metrics, "tickstock_ws_clients_refused_total", &origin),
        1.0
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sees_plugin_calls_a_shadow_report_and_the_sessions_events() {
    let symbols = &helpers::SYMBOLS[..6];
    let sim = helpers::recording_simulator(500.0, symbols).await;
    let host = helpers::host_with(&sim, &helpers::prefix("operator-page"), None, symbols).await;
    // Before the page opens: an install (the log must show it, from the
    // snapshot) and a shadow run of a health candidate.
    helpers::install(&host, "normalizer", helpers::guests::normalizer_next()).await;
    let (code, started) = helpers::post(
        &host,
        "/admin/plugins/health/shadow",
        Some(helpers::TOKEN),
        helpers::guests::health_next(),
    )
    .await;
    assert_eq!(code, 200, "{started}");

    let driver = ChromeDriver::start();
    let client = browser(&driver).await;
    client
        .goto(&format!("http://{}/", host.addr))
        .await
        .unwrap();
    let deadline = Instant::now() + SECS;
    loop {
        let mut cells = Vec::new();
        for td in client
            .find_all(fantoccini::Locator::Css("#plugins tbody tr td"))
            .await
            .unwrap()
        {
            cells.push(td.text().await.unwrap_or_default());
        }
        let plugins = cells.join(" | ");
        let shadow = text(&client, "shadow").await;
        let log = text(&client, "log").await;
        // kind | plugin | wit | calls | errors | p99, per row.
        let normalizer_row = cells.chunks(6).find(|r| r[0] == "normalizer");
        let calls_shown = normalizer_row.is_some_and(|r| {
            r[1] == "massive-stocks 1.1.0"
                && r[3].replace(',', "").parse::<u64>().is_ok_and(|n| n > 0)
                && r[4] == "0"
                && r[5].ends_with(" ms")
        });
        if calls_shown
            && shadow.contains("Shadow health: stream-health 1.1.0 vs live 1.0.0")
            && shadow.contains("added: symbols_seen_total")
            && log.contains("plugin_installed: normalizer 1.1.0")
            && log.contains("shadow started")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "plugins: {plugins}\nshadow: {shadow}\nlog: {log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The chart's time axis reads as a clock, in whole seconds.
    let labels = client
        .execute(
            "const c = window.tickstockChart(); return c && c.axes[0].values(c, [1764338605, 1764338620, 1764338635]);",
            vec![],
        )
        .await
        .unwrap();
    let labels: Vec<String> = serde_json::from_value(labels).unwrap_or_default();
    assert_eq!(labels.len(), 3, "{labels:?}");
    for label in &labels {
        let digits: Vec<&str> = label.split(':').collect();
        assert!(
            digits.len() == 3
                && digits
                    .iter()
                    .all(|d| d.len() == 2 && d.chars().all(|c| c.is_ascii_digit())),
            "not a clock label: {label:?}"
        );
    }
    assert_no_script_errors(&client).await;
    client.close().await.unwrap();
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_panel_shows_each_instance_and_whether_it_runs_the_desired_version() {
    let (redis, ch, _consumer) = helpers::redis_and_consumer("fleet-page").await;
    let symbols = &helpers::SYMBOLS[..6];
    let sim = helpers::recording_simulator(200.0, symbols).await;
    let mut config = helpers::sim_config(&sim, ch.prefix(), Some(redis.url()), symbols);
    config.fleet_key = Some(tickstock::secret::Secret::new(
        "fleet-key-for-the-page-0123456789",
    ));
    let host = TestHost::start(&config).await;
    // A second instance without the key: it will not follow the install.
    let _keyless = helpers::role("ingest", &redis.url(), ch.prefix(), &[]);

    let driver = ChromeDriver::start();
    let client = browser(&driver).await;
    client
        .goto(&format!("http://{}/", host.addr))
        .await
        .unwrap();
    let (code, reply) = helpers::post(
        &host,
        "/admin/plugins/normalizer",
        Some(helpers::TOKEN),
        helpers::guests::normalizer_next(),
    )
    .await;
    assert_eq!(code, 202, "{reply}");
    let deadline = Instant::now() + SECS;
    loop {
        let mut rows = Vec::new();
        for tr in client
            .find_all(fantoccini::Locator::Css("#fleet tbody tr"))
            .await
            .unwrap()
        {
            let class = tr
                .attr("class")
                .await
                .unwrap_or_default()
                .unwrap_or_default();
            rows.push((tr.text().await.unwrap_or_default(), class));
        }
        let desired = text(&client, "fleet-desired").await;
        let run_ok = rows.iter().any(|(t, class)| {
            t.contains("run")
                && t.contains("massive-stocks 1.1.0")
                && t.ends_with("yes")
                && class.is_empty()
        });
        let keyless_flagged = rows.iter().any(|(t, class)| {
            t.contains("ingest") && t.contains("NO (no fleet key)") && class == "diverged"
        });
        if run_ok
            && keyless_flagged
            && desired.contains("normalizer: generation 1, install")
            && desired.contains("NOT every instance runs it")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fleet rows: {rows:?}\ndesired: {desired}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    host.stop().await;
}
