//! Reads `PREFIX:market:ticks` (and `PREFIX:feed`) and hands the ticks to
//! the health thread in batches of whatever has arrived, up to
//! [`super::MAX_BATCH`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::Utc;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{FeedView, HealthJob, ProcessStats, MAX_BATCH};
use crate::bus::{Bus, Message, Subscription};
use crate::events::FeedStatus;
use crate::plugins::runner::Inbox;
use crate::plugins::Tick;

/// Messages the subscription may buffer (eight full batches); past it the
/// subscription drops and counts.
const SUBSCRIPTION_BUFFER: usize = 8 * MAX_BATCH;

/// The `market_tick` fields the health loop reads (extra fields allowed).
#[derive(Deserialize)]
struct WireTick {
    symbol: String,
    price: f64,
    #[serde(default)]
    volume: Option<f64>,
    timestamp: i64,
}

impl From<WireTick> for Tick {
    fn from(t: WireTick) -> Tick {
        Tick {
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
        }
    }
}

/// Subscribes and starts the consumer task; it ends on `stop`.
pub(super) fn start(
    bus: &Bus,
    inbox: Inbox<HealthJob>,
    stats: Arc<ProcessStats>,
    feed: Arc<FeedView>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let channels = bus.channels();
    let feed_channel = channels.feed();
    let subscription = bus.subscribe(
        vec![channels.ticks(), feed_channel.clone()],
        SUBSCRIPTION_BUFFER,
    );
    tokio::spawn(consume(
        subscription,
        inbox,
        stats,
        feed,
        feed_channel,
        stop,
    ))
}

async fn consume(
    mut sub: Subscription,
    inbox: Inbox<HealthJob>,
    stats: Arc<ProcessStats>,
    feed: Arc<FeedView>,
    feed_channel: String,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            // What already arrived still counts: one last batch.
            () = stop.cancelled() => match sub.try_recv() { Some(m) => m, None => return },
            m = sub.recv() => match m { Some(m) => m, None => return },
        };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            read(message, &feed_channel, &feed, &stats, &mut batch);
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
        // A health thread that no longer takes work (its runner gave up)
        // must not hold the role's shutdown.
        tokio::select! {
            sent = inbox.send(HealthJob::Observe(Arc::new(batch), now)) => if sent.is_err() { return },
            () = stop.cancelled() => return,
        }
    }
}

/// One message: a feed event updates the view, a tick joins the batch.
fn read(
    message: Message,
    feed_channel: &str,
    feed: &FeedView,
    stats: &ProcessStats,
    batch: &mut Vec<Tick>,
) {
    if *message.channel == *feed_channel {
        match serde_json::from_str::<FeedStatus>(&message.payload) {
            Ok(status) => feed.note(status),
            Err(err) => {
                let n = stats.invalid_feed_events.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::warn!(error = %err, unreadable_total = n + 1, "unreadable feed_status event");
                }
            }
        }
        return;
    }
    match serde_json::from_str::<WireTick>(&message.payload) {
        Ok(tick) => batch.push(tick.into()),
        Err(_) => {
            stats.invalid_ticks.fetch_add(1, Ordering::Relaxed);
        }
    }
}
