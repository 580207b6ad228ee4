//! Bus counters: what was published, dropped and why, and the connection
//! state, for health and metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bus counters. `published + dropped` accounts for every message offered.
#[derive(Debug, Default)]
pub struct BusStats {
    /// Messages offered to the publisher.
    pub offered: AtomicU64,
    /// Messages the bus accepted (Redis answered the pipeline).
    pub published: AtomicU64,
    /// Messages dropped because the publish buffer was full (bus down or slow).
    pub dropped: AtomicU64,
    /// Tick messages published (the `market:ticks` channel).
    pub ticks_published: AtomicU64,
    /// Tick messages dropped.
    pub ticks_dropped: AtomicU64,
    /// Messages received by subscribers.
    pub received: AtomicU64,
    /// Messages a slow in-process subscriber missed.
    pub lagged: AtomicU64,
    /// Redis errors (connect, publish, subscribe).
    pub errors: AtomicU64,
    /// Reconnects after an error.
    pub reconnects: AtomicU64,
    connected: AtomicBool,
    /// Set while the publisher is disconnected.
    publisher_down: AtomicBool,
    /// Set while a subscriber is disconnected.
    subscriber_down: AtomicU64,
}

impl BusStats {
    /// Stats of a bus that starts connected.
    pub fn new_connected() -> Self {
        let s = BusStats::default();
        s.connected.store(true, Ordering::Relaxed);
        s
    }

    /// Whether the bus is reachable (publisher and subscribers up).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
            && !self.publisher_down.load(Ordering::Relaxed)
            && self.subscriber_down.load(Ordering::Relaxed) == 0
    }

    pub(super) fn set_publisher_down(&self, down: bool) {
        self.publisher_down.store(down, Ordering::Relaxed);
    }

    pub(super) fn subscriber_down(&self, down: bool) {
        if down {
            self.subscriber_down.fetch_add(1, Ordering::Relaxed);
        } else {
            self.subscriber_down.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
