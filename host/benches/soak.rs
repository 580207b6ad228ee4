//! The soak run: the whole pipeline as operators run it, for a long time.
//! A private `redis-server`, `tickstock simulate` at 10,000 trades/s and
//! `tickstock run` as separate processes, a Redis subscriber counting
//! ticks; a normalizer hot swap every minute (1.0.0 <-> 1.1.0) and a Redis
//! restart every ten. Prints RSS and counters every minute, then the
//! totals and the errors.
//!
//! `cargo bench -p tickstock --bench soak -- --minutes 30` (not in CI;
//! `--minutes 3` for a quick look).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "soak-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The sum of the samples of `name` in the host's `/metrics`.
fn metric(port: u16, name: &str) -> f64 {
    let Ok(text) = reqwest_blocking(port, "/metrics") else {
        return f64::NAN;
    };
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn reqwest_blocking(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn install(port: u16, bytes: &[u8]) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/admin/plugins/normalizer"))
            .bearer_auth(TOKEN)
            .body(bytes.to_vec())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
}

/// Counts ticks on `PREFIX:market:ticks`, resubscribing after a restart.
fn subscriber(port: u16, received: Arc<AtomicU64>) {
    std::thread::spawn(move || loop {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        if let Ok(mut con) = client.get_connection() {
            let mut pubsub = con.as_pubsub();
            if pubsub.subscribe("tickstock:market:ticks").is_ok() {
                while pubsub.get_message().is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    });
}

fn main() {
    let minutes: u64 = std::env::args()
        .skip_while(|a| a != "--minutes")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(30);
    let bin = env!("CARGO_BIN_EXE_tickstock");
    let (redis_port, sim_port, http) = (free_port(), free_port(), free_port());
    let mut redis_server = redis(redis_port);
    let mut sim = Command::new(bin)
        .args(["simulate", "--listen", &format!("127.0.0.1:{sim_port}")])
        .args(["--key", "k", "--rate", "10000", "--batch", "10"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut host = Command::new(bin)
        .arg("run")
        .args([
            "--massive-url",
            &format!("ws://127.0.0.1:{sim_port}/stocks"),
        ])
        .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}/")])
        .env("MASSIVE_API_KEY", "k")
        .env("TICKSTOCK_ADMIN_TOKEN", TOKEN)
        .env("TICKSTOCK_LISTEN", format!("127.0.0.1:{http}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    subscriber(redis_port, received.clone());
    let versions = [
        tickstock_test_artifacts::normalizer_next(),
        tickstock::plugins::embedded::NORMALIZER.to_vec(),
    ];
    let (mut swaps, mut failed_swaps, mut restarts) = (0, 0, 0);
    let mut peak: f64 = 0.0;
    let start = Instant::now();
    println!("minute  rss_MiB  peak_MiB  received  published  dropped  frames_dropped  swaps  redis_restarts");
    for minute in 1..=minutes {
        let until = start + Duration::from_secs(60 * minute);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_secs(1));
            peak = peak.max(rss_mib(host.id()));
        }
        if install(http, &versions[(minute % 2) as usize]) {
            swaps += 1;
        } else {
            failed_swaps += 1;
        }
        if minute % 10 == 0 && minute < minutes {
            let _ = redis_server.kill();
            let _ = redis_server.wait();
            redis_server = redis(redis_port);
            restarts += 1;
        } else {
            let _ = redis_server.try_wait();
        }
        println!(
            "{minute:>6}  {:>7.1}  {peak:>8.1}  {:>8}  {:>9}  {:>7}  {:>14}  {swaps:>5}  {restarts:>14}",
            rss_mib(host.id()),
            received.load(Ordering::Relaxed),
            metric(http, "tickstock_ticks_published_total"),
            metric(http, "tickstock_ticks_dropped_total"),
            metric(http, "tickstock_frames_dropped_total"),
        );
    }
    let produced = metric(http, "tickstock_ticks_received_total");
    let published = metric(http, "tickstock_ticks_published_total");
    let unconfirmed = metric(http, "tickstock_ticks_unconfirmed_total");
    let errors = metric(http, "tickstock_plugin_errors_total");
    let _ = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status();
    let status = host.wait().unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = redis_server.kill();
    let _ = redis_server.wait();
    println!("ticks normalized {produced}, published {published}, unconfirmed {unconfirmed}, received by the subscriber {}", received.load(Ordering::Relaxed));
    println!("peak RSS {peak:.1} MiB; swaps {swaps} ok, {failed_swaps} failed; Redis restarts {restarts}; plugin errors {errors}; host exit {status}");
}
