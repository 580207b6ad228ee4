//! The in-process bus: one broadcast channel for every message, so a
//! subscriber sees messages in publish order across channels, as with
//! Redis. A subscriber that falls more than the channel's capacity behind
//! loses the oldest messages; they are counted as `lagged`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{BusStats, Message};

/// Messages kept for slow subscribers.
const CAPACITY: usize = 1 << 16;

pub(super) struct MemoryBackend {
    tx: broadcast::Sender<Arc<Message>>,
    stats: Arc<BusStats>,
}

impl MemoryBackend {
    pub(super) fn new(stats: Arc<BusStats>) -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        MemoryBackend { tx, stats }
    }

    pub(super) fn publish(&self, message: Message) -> bool {
        let is_tick = message.channel.ends_with(":market:ticks");
        // No subscriber is not an error: the message is published to nobody,
        // as with Redis.
        let _ = self.tx.send(Arc::new(message));
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        if is_tick {
            self.stats.ticks_published.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    pub(super) fn subscribe(
        &self,
        channels: Vec<String>,
        tx: mpsc::Sender<Message>,
        cancel: CancellationToken,
    ) {
        let mut rx = self.tx.subscribe();
        let wanted: HashSet<String> = channels.into_iter().collect();
        let stats = self.stats.clone();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    () = cancel.cancelled() => return,
                    r = rx.recv() => r,
                };
                match received {
                    Ok(message) => {
                        if !wanted.contains(&*message.channel) {
                            continue;
                        }
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        if tx.send((*message).clone()).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        stats.lagged.fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(
                            missed = n,
                            "in-process subscriber fell behind; messages lost"
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}
