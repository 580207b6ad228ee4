//! Once per interval: the host's state, the plugin's report, one
//! `streaming_health` event. A plugin that fails or does not answer in time
//! gives an `error` event with the required metrics at zero, so consumers
//! still see one event per interval.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{report_timeout, FeedView, HealthJob, ProcessStats, Settings};
use crate::bus::{Bus, BusStats};
use crate::contract::REQUIRED_METRICS;
use crate::events::HealthEvent;
use crate::plugins::runner::Inbox;
use crate::plugins::{health_status_label, HealthReport, HostState, MetricValue};

pub(super) struct Reporter {
    bus: Bus,
    inbox: Inbox<HealthJob>,
    stats: Arc<ProcessStats>,
    feed: Arc<FeedView>,
    settings: Settings,
    last_drops: AtomicU64,
    last_subscriptions_lost: AtomicU64,
    warned: AtomicBool,
    /// When the previous report was made: incidents since then are issues.
    last_report: Mutex<Instant>,
}

impl Reporter {
    pub(super) fn new(
        bus: Bus,
        inbox: Inbox<HealthJob>,
        stats: Arc<ProcessStats>,
        feed: Arc<FeedView>,
        settings: Settings,
    ) -> Reporter {
        Reporter {
            bus,
            inbox,
            stats,
            feed,
            settings,
            last_drops: AtomicU64::new(0),
            last_subscriptions_lost: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            last_report: Mutex::new(Instant::now()),
        }
    }

    /// One health event per interval until cancelled.
    pub(super) async fn run(&self, cancel: &CancellationToken) {
        let interval = self.settings.interval;
        let start = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval_at(start + interval, interval);
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
        let feed = self.feed.health();
        // Lost on the way out: frames the feed dropped (queue full or over
        // the size limit), ticks never published, refused by Redis, or
        // unconfirmed after a connection failure. (A subscriber's own lag is
        // not the product's output: it is in /metrics.)
        let drops = feed.frames_dropped
            + BusStats::get(&bus.ticks_dropped)
            + BusStats::get(&bus.ticks_refused)
            + BusStats::get(&bus.ticks_unconfirmed);
        let previous = self.last_drops.swap(drops, Ordering::Relaxed);
        let mut issues: Vec<String> = feed.issue.into_iter().collect();
        let lost = BusStats::get(&bus.subscriptions_lost);
        let lost_before = self.last_subscriptions_lost.swap(lost, Ordering::Relaxed);
        if lost > lost_before {
            issues.push(format!(
                "Redis dropped {} subscription(s) since the last report; ticks published meanwhile were missed",
                lost - lost_before
            ));
        }
        if let Ok(mut last) = self.last_report.lock() {
            issues.extend(self.settings.registry.incidents_since(*last));
            *last = Instant::now();
        }
        HostState {
            window_ms: self.settings.interval.as_millis() as u64,
            subscribed_symbols: self.settings.subscribed,
            feed_connected: feed.connected,
            bus_connected: bus.is_connected(),
            dropped_since_last_report: drops.saturating_sub(previous),
            issues,
        }
    }

    /// Asks the health thread for a report (queued behind the batches
    /// already waiting), under one timeout for queueing and answering.
    async fn report(&self, now_ms: i64, host: HostState) -> Result<HealthReport, String> {
        let limit = report_timeout(self.settings.interval);
        let asked = async {
            let (reply_tx, reply_rx) = oneshot::channel();
            self.inbox
                .send(HealthJob::Report(now_ms, host, reply_tx))
                .await
                .map_err(|e| e.to_string())?;
            match reply_rx.await {
                Ok(report) => report.map_err(|e| e.to_string()),
                Err(_) => Err("the health thread stopped".to_string()),
            }
        };
        tokio::time::timeout(limit, asked)
            .await
            .unwrap_or_else(|_| Err(format!("the health plugin did not report within {limit:?}")))
    }

    async fn health_event(&self) -> HealthEvent {
        let now = Utc::now();
        let session = &self.settings.session.session_id;
        match self.report(now.timestamp_millis(), self.host_state()).await {
            Ok(report) => {
                self.warned.store(false, Ordering::Relaxed);
                let metrics: Map<String, Value> = report
                    .metrics
                    .into_iter()
                    .map(|m| (m.name, metric_json(m.value)))
                    .collect();
                let status = health_status_label(report.status);
                HealthEvent::new(session, status, &report.reason, metrics, now)
                    .in_session(self.settings.session.clone())
            }
            Err(error) => {
                self.stats.plugin_errors.fetch_add(1, Ordering::Relaxed);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, "health plugin could not report");
                }
                let metrics: Map<String, Value> = REQUIRED_METRICS
                    .iter()
                    .map(|field| (field.to_string(), Value::from(0)))
                    .collect();
                let reason = format!("health plugin failed: {error}");
                HealthEvent::new(session, "error", &reason, metrics, now)
                    .in_session(self.settings.session.clone())
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
