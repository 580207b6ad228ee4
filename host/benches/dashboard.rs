//! Dashboard delivery: how long a health event takes from being published
//! on the bus to arriving at WebSocket clients (1 and 200 clients, the
//! in-process bus and, when a Redis server answers on 127.0.0.1:6379,
//! Redis), and what 200 clients cost the tick path (publishing 200,000
//! ticks with 0 vs 200 clients connected).
//!
//! `cargo bench -p tickstock --bench dashboard`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tickstock::bus::{Bus, Channels};
use tickstock::web::state::{follow, DashboardState};
use tickstock::web::{self, AppState};
use tokio_util::sync::CancellationToken;

const EVENTS: usize = 100;

struct Setup {
    bus: Bus,
    addr: std::net::SocketAddr,
    cancel: CancellationToken,
}

async fn setup(redis: bool, prefix: &str) -> Setup {
    let channels = Channels::new(prefix);
    let bus = if redis {
        Bus::redis(
            &tickstock::secret::Secret::new("redis://127.0.0.1:6379/"),
            channels,
            100_000,
        )
        .unwrap()
    } else {
        Bus::memory(channels)
    };
    let cancel = CancellationToken::new();
    let dashboard = DashboardState::new(Duration::from_secs(10));
    follow(&bus, dashboard.clone(), cancel.clone());
    let state = AppState::dashboard_only(dashboard, bus.clone(), cancel.clone());
    let (addr, _) = web::serve(
        "127.0.0.1:0".parse().unwrap(),
        web::router(state),
        cancel.clone(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // subscriptions settle
    Setup { bus, addr, cancel }
}

async fn latency(redis: bool, clients: usize) -> Vec<f64> {
    let s = setup(
        redis,
        &format!("bench-lat-{}-{clients}-{}", redis, std::process::id()),
    )
    .await;
    let base = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
            .await
            .unwrap();
        let samples = samples.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < EVENTS {
                let Some(Ok(msg)) = ws.next().await else {
                    break;
                };
                let Ok(text) = msg.into_text() else { continue };
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                if v["kind"] == "health" {
                    let sent = v["event"]["health"]["sent_us"].as_f64().unwrap();
                    let now = base.elapsed().as_micros() as f64;
                    samples.lock().unwrap().push((now - sent) / 1000.0);
                    got += 1;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let channel = s.bus.channels().health();
    for _ in 0..EVENTS {
        let sent = base.elapsed().as_micros() as f64;
        let event = serde_json::json!({"type": "streaming_health", "health": {"status": "healthy", "session_id": "bench", "ticks_per_second": 1.0, "active_symbols": 1, "sent_us": sent}});
        s.bus.publish_to(&channel, event.to_string());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    s.cancel.cancel();
    s.bus.shutdown();
    let mut v = samples.lock().unwrap().clone();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

async fn tick_cost(clients: usize) -> f64 {
    let s = setup(false, &format!("bench-cost-{clients}")).await;
    let mut conns = Vec::new();
    for _ in 0..clients {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
            .await
            .unwrap();
        let (_, mut read) = ws.split();
        conns.push(tokio::spawn(async move {
            while let Some(Ok(_)) = read.next().await {}
        }));
    }
    let ticks = s.bus.ticks_channel().clone();
    let payload = r#"{"type":"market_tick","symbol":"AAPL","price":227.51,"volume":100,"timestamp":1759864911658,"source":"massive"}"#;
    let n = 200_000;
    let start = Instant::now();
    for i in 0..n {
        s.bus.publish(&ticks, payload.to_string());
        if i % 1000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    s.cancel.cancel();
    for c in conns {
        c.abort();
    }
    rate
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let redis = redis::Client::open("redis://127.0.0.1:6379/")
            .ok()
            .and_then(|c| c.get_connection().ok())
            .is_some();
        println!("health event publish -> WebSocket client receipt, {EVENTS} events 20 ms apart");
        println!("{:<10} {:>8} {:>9} {:>9} {:>9} {:>8}", "bus", "clients", "p50 ms", "p99 ms", "max ms", "samples");
        for bus in [false, true] {
            if bus && !redis {
                println!("redis      (no server on 127.0.0.1:6379; skipped)");
                continue;
            }
            for clients in [1, 200] {
                let v = latency(bus, clients).await;
                println!(
                    "{:<10} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>8}",
                    if bus { "redis" } else { "in-process" },
                    clients,
                    pct(&v, 0.5),
                    pct(&v, 0.99),
                    v.last().copied().unwrap_or(f64::NAN),
                    v.len()
                );
            }
        }
        let base = tick_cost(0).await;
        let loaded = tick_cost(200).await;
        println!("tick publishing (in-process bus, dashboard following ticks): {base:.0} ticks/s with 0 clients, {loaded:.0} ticks/s with 200 clients (ratio {:.2})", loaded / base);
    });
}
