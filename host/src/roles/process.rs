//! The process role: `PREFIX:market:ticks` -> health component; one
//! `session_started` when it starts, exactly one `streaming_health` per
//! interval, and `session_stopped` on shutdown.
//!
//! The health component lives on its own thread (its instance is not
//! `Sync`, and a slow plugin must never block a runtime thread); tasks hand
//! it batches and report requests through a bounded channel.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusStats, Message};
use crate::config::Config;
use crate::events::{HealthEvent, SessionStarted, SessionStopped};
use crate::feed::FeedStats;
use crate::plugins::{
    health_status_label, CallError, HealthPlugin, HealthReport, HostState, MetricValue,
    PluginEngine, PluginKind, PluginRegistry, Tick,
};

/// Feed status older than this means the ingest side is gone.
const FEED_STATUS_STALE: Duration = Duration::from_secs(15);
/// Ticks handed to the health thread per batch, at most.
const MAX_BATCH: usize = 2_048;

/// Process counters.
#[derive(Debug, Default)]
pub struct ProcessStats {
    /// Ticks handed to the health component.
    pub ticks_processed: AtomicU64,
    /// Tick messages that were not a valid `market_tick`.
    pub invalid_ticks: AtomicU64,
    /// Health events published.
    pub health_events: AtomicU64,
    /// Failed health plugin calls.
    pub plugin_errors: AtomicU64,
}

/// What the process role knows about the feed.
enum FeedView {
    /// The feed runs in this process (`run`).
    Local(Arc<FeedStats>),
    /// Learned from `PREFIX:feed` events.
    Remote(Mutex<Option<RemoteFeed>>),
}

/// The last `feed_status` event from the ingest role.
#[derive(Clone)]
struct RemoteFeed {
    at: Instant,
    connected: bool,
    issue: Option<String>,
    frames_dropped: u64,
}

/// A command for the health thread.
enum HealthCmd {
    Observe(Vec<Tick>, i64),
    Swap(Box<HealthPlugin>, oneshot::Sender<HealthSwapped>),
    Report(
        i64,
        HostState,
        oneshot::Sender<Result<HealthReport, CallError>>,
    ),
}

/// The result of a health plugin swap.
pub struct HealthSwapped {
    /// The replaced instance (drop it off the health thread).
    pub old: HealthPlugin,
    /// Whether the new version took over the old one's state (`Err`: why
    /// it starts fresh).
    pub state: Result<(), String>,
    /// Time the health thread spent switching (export, import, replace).
    pub pause: Duration,
}

/// Sends swaps to the health thread; they are applied between two batches.
#[derive(Clone)]
pub struct HealthHandle {
    tx: mpsc::Sender<HealthCmd>,
}

impl HealthHandle {
    /// Replaces the health plugin with `plugin`, carrying the state over.
    pub async fn swap(&self, plugin: HealthPlugin) -> anyhow::Result<HealthSwapped> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(HealthCmd::Swap(Box::new(plugin), done))
            .await
            .map_err(|_| anyhow::anyhow!("the health thread has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the health thread stopped during the swap"))
    }
}

/// A running process role.
pub struct Process {
    /// The session's id (UUID v4).
    pub session_id: String,
    /// Counters.
    pub stats: Arc<ProcessStats>,
    /// Swaps the health plugin between two batches.
    pub health: HealthHandle,
    /// The component the health plugin started with.
    pub component: Arc<crate::plugins::LoadedComponent>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Process {
    /// Publishes `session_started` and starts consuming ticks and reporting
    /// health. `feed` is the local feed's counters when the feed runs in
    /// this process.
    pub async fn start(
        config: &Config,
        bus: &Bus,
        engine: &PluginEngine,
        registry: &Arc<PluginRegistry>,
        feed: Option<Arc<FeedStats>>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Process> {
        let (plugin, component): (HealthPlugin, _) =
            super::start_plugin(config, engine, registry, bus, PluginKind::Health, &cancel).await?;
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let swap_tx = cmd_tx.clone();
        let stats = Arc::new(ProcessStats::default());
        spawn_health_thread(plugin, cmd_rx, stats.clone()).context("starting the health thread")?;

        let channels = bus.channels().clone();
        let subscription = bus.subscribe(vec![channels.ticks(), channels.feed()], 65_536);
        let session_id = uuid::Uuid::new_v4().to_string();
        let started = Utc::now();
        let universe = config.subscription.universe.clone();
        let started_event = SessionStarted::new(
            &session_id,
            &universe,
            config.subscription.symbol_count(),
            started,
        );
        bus.publish_to(
            &channels.session_started(),
            serde_json::to_string(&started_event)?,
        );
        tracing::info!(%session_id, %universe, "streaming session started");

        let feed_view = Arc::new(match feed {
            Some(stats) => FeedView::Local(stats),
            None => FeedView::Remote(Mutex::new(None)),
        });
        let ticks_stopped = CancellationToken::new();
        tokio::spawn(consume(
            subscription,
            cmd_tx.clone(),
            stats.clone(),
            feed_view.clone(),
            channels.feed(),
            ticks_stopped.clone(),
        ));

        let ctx = Reporter {
            bus: bus.clone(),
            cmd_tx,
            stats: stats.clone(),
            feed: feed_view,
            interval: config.health_interval,
            subscribed: config.subscription.symbol_count() as u32,
            session_id: session_id.clone(),
            last_drops: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        };
        let task = tokio::spawn(async move {
            ctx.run(&cancel).await;
            ticks_stopped.cancel();
            let stopped = SessionStopped::new(
                &ctx.session_id,
                &universe,
                started,
                Utc::now(),
                ctx.stats.ticks_processed.load(Ordering::Relaxed),
            );
            ctx.bus.publish_to(
                &ctx.bus.channels().session_stopped(),
                serde_json::to_string(&stopped)?,
            );
            if !ctx.bus.flush(Duration::from_secs(3)).await {
                tracing::warn!("could not flush every event before stopping");
            }
            tracing::info!(session_id = %ctx.session_id, "streaming session stopped");
            Ok(())
        });
        Ok(Process {
            session_id,
            stats,
            health: HealthHandle { tx: swap_tx },
            component,
            task,
        })
    }

    /// Waits until the session stopped (after cancellation) and its
    /// `session_stopped` event was flushed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("process task")?
    }
}

fn spawn_health_thread(
    mut plugin: HealthPlugin,
    mut rx: mpsc::Receiver<HealthCmd>,
    stats: Arc<ProcessStats>,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("health".into()).spawn(move || {
        while let Some(cmd) = rx.blocking_recv() {
            match cmd {
                HealthCmd::Observe(ticks, now) => {
                    if let Err(err) = plugin.observe(&ticks, now) {
                        stats.plugin_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(plugin = %plugin.label(), error = %err, "health plugin failed to observe a batch");
                    }
                }
                HealthCmd::Report(now, host, reply) => {
                    let _ = reply.send(plugin.report(now, &host));
                }
                HealthCmd::Swap(new, done) => {
                    let mut new = *new;
                    let start = Instant::now();
                    // The new version continues the old one's windows.
                    let state = match plugin.export_state() {
                        Ok(bytes) => match new.import_state(&bytes, plugin.info()) {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(refused)) => Err(refused),
                            Err(err) => Err(format!("import_state failed: {err}")),
                        },
                        Err(err) => Err(format!("export_state of the old version failed: {err}")),
                    };
                    let old = std::mem::replace(&mut plugin, new);
                    let pause = start.elapsed();
                    match &state {
                        Ok(()) => tracing::info!(from = %old.label(), to = %plugin.label(), pause_us = pause.as_micros() as u64, "health plugin swapped; state carried over"),
                        Err(why) => tracing::warn!(from = %old.label(), to = %plugin.label(), reason = %why, "health plugin swapped; it starts with fresh state"),
                    }
                    let _ = done.send(HealthSwapped { old, state, pause });
                }
            }
        }
    })?;
    Ok(())
}

/// The `market_tick` fields the process role reads (extra fields allowed).
#[derive(Deserialize)]
struct WireTick {
    symbol: String,
    price: f64,
    #[serde(default)]
    volume: Option<f64>,
    timestamp: i64,
}

/// Reads tick messages into batches for the health thread.
async fn consume(
    mut sub: crate::bus::Subscription,
    cmd_tx: mpsc::Sender<HealthCmd>,
    stats: Arc<ProcessStats>,
    feed: Arc<FeedView>,
    feed_channel: String,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return,
            m = sub.recv() => match m { Some(m) => m, None => return },
        };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            if *message.channel == *feed_channel {
                note_feed(&feed, &message);
            } else {
                match serde_json::from_str::<WireTick>(&message.payload) {
                    Ok(t) => batch.push(Tick {
                        symbol: t.symbol,
                        price: t.price,
                        size: t
                            .volume
                            .filter(|v| v.is_finite() && *v >= 0.0)
                            .map(|v| v as u64)
                            .unwrap_or(0),
                        timestamp_ms: t.timestamp,
                        sequence: None,
                        kind: None,
                        exchange: None,
                    }),
                    Err(_) => {
                        stats.invalid_ticks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if batch.len() < MAX_BATCH {
                next = sub.try_recv();
            }
        }
        if batch.is_empty() {
            continue;
        }
        stats
            .ticks_processed
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let now = Utc::now().timestamp_millis();
        if cmd_tx.send(HealthCmd::Observe(batch, now)).await.is_err() {
            return;
        }
    }
}

fn note_feed(feed: &FeedView, message: &Message) {
    let FeedView::Remote(slot) = feed else { return };
    let Ok(v) = serde_json::from_str::<Value>(&message.payload) else {
        return;
    };
    let connected = v["connected"].as_bool().unwrap_or(false);
    let issue = v["issue"].as_str().map(str::to_string);
    let dropped = v["frames_dropped"].as_u64().unwrap_or(0);
    if let Ok(mut s) = slot.lock() {
        *s = Some(RemoteFeed {
            at: Instant::now(),
            connected,
            issue,
            frames_dropped: dropped,
        });
    }
}

struct Reporter {
    bus: Bus,
    cmd_tx: mpsc::Sender<HealthCmd>,
    stats: Arc<ProcessStats>,
    feed: Arc<FeedView>,
    interval: Duration,
    subscribed: u32,
    session_id: String,
    last_drops: AtomicU64,
    warned: AtomicBool,
}

impl Reporter {
    /// One health event per interval until cancelled.
    async fn run(&self, cancel: &CancellationToken) {
        let start = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval_at(start + self.interval, self.interval);
        // After a stall, skip missed ticks rather than bursting.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let channel: Arc<str> = self.bus.channels().health().into();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let event = self.health_event().await;
            match serde_json::to_string(&event) {
                Ok(json) => {
                    self.bus.publish(&channel, json);
                    self.stats.health_events.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => tracing::error!(error = %err, "cannot serialize the health event"),
            }
        }
    }

    fn host_state(&self) -> HostState {
        let bus: &BusStats = self.bus.stats();
        let mut issues = Vec::new();
        let (feed_connected, feed_drops) = match &*self.feed {
            FeedView::Local(f) => {
                if let Some(issue) = f.issue().filter(|_| !f.is_streaming()) {
                    issues.push(issue);
                }
                (
                    f.is_streaming(),
                    FeedStats::get(&f.frames_dropped_queue_full),
                )
            }
            FeedView::Remote(slot) => match slot.lock().ok().and_then(|s| s.clone()) {
                Some(feed) if feed.at.elapsed() < FEED_STATUS_STALE => {
                    if let Some(issue) = feed.issue.filter(|_| !feed.connected) {
                        issues.push(issue);
                    }
                    (feed.connected, feed.frames_dropped)
                }
                Some(feed) => {
                    issues.push(format!(
                        "no feed status from the ingest role for {}s",
                        feed.at.elapsed().as_secs()
                    ));
                    (false, feed.frames_dropped)
                }
                None => {
                    issues.push("no feed status from the ingest role yet".into());
                    (false, 0)
                }
            },
        };
        let drops = feed_drops + BusStats::get(&bus.dropped) + BusStats::get(&bus.lagged);
        let previous = self.last_drops.swap(drops, Ordering::Relaxed);
        HostState {
            window_ms: self.interval.as_millis() as u64,
            subscribed_symbols: self.subscribed,
            feed_connected,
            bus_connected: bus.is_connected(),
            dropped_since_last_report: drops.saturating_sub(previous),
            issues,
        }
    }

    async fn health_event(&self) -> HealthEvent {
        let host = self.host_state();
        let now = Utc::now();
        let (reply_tx, reply_rx) = oneshot::channel();
        let report = match self
            .cmd_tx
            .send(HealthCmd::Report(
                now.timestamp_millis(),
                host.clone(),
                reply_tx,
            ))
            .await
        {
            Ok(()) => reply_rx
                .await
                .map_err(|_| "the health thread stopped".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(_) => Err("the health thread stopped".to_string()),
        };
        match report {
            Ok(report) => {
                self.warned.store(false, Ordering::Relaxed);
                let metrics: Map<String, Value> = report
                    .metrics
                    .into_iter()
                    .map(|m| (m.name, metric_json(m.value)))
                    .collect();
                HealthEvent::new(
                    &self.session_id,
                    health_status_label(report.status),
                    &report.reason,
                    metrics,
                    now,
                )
            }
            Err(error) => {
                self.stats.plugin_errors.fetch_add(1, Ordering::Relaxed);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, "health plugin could not report");
                }
                let mut metrics = Map::new();
                for field in [
                    "active_symbols",
                    "ticks_per_second",
                    "patterns_detected",
                    "indicators_calculated",
                ] {
                    metrics.insert(field.into(), Value::from(0));
                }
                HealthEvent::new(
                    &self.session_id,
                    "error",
                    &format!("health plugin failed: {error}"),
                    metrics,
                    now,
                )
            }
        }
    }
}

fn metric_json(value: MetricValue) -> Value {
    match value {
        MetricValue::Integer(i) => Value::from(i),
        MetricValue::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        MetricValue::Flag(b) => Value::from(b),
        MetricValue::Text(t) => Value::from(t),
    }
}
