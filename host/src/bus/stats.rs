//! Bus counters: what was published, dropped and why, and the connection
//! state, for health and metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Refusal reasons counted apart; others count as `other`.
const REASONS_KEPT: usize = 32;

/// Bus counters. Every message offered ends in exactly one of `published`,
/// `dropped`, `refused` or `unconfirmed`.
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
    /// Messages Redis answered with an error (e.g. `NOPERM` from an ACL):
    /// dropped, never retried.
    pub refused: AtomicU64,
    /// Tick messages refused.
    pub ticks_refused: AtomicU64,
    /// Messages sent in a pipeline whose connection failed before Redis
    /// answered: maybe delivered, never resent (no message is published
    /// twice).
    pub unconfirmed: AtomicU64,
    /// Tick messages unconfirmed.
    pub ticks_unconfirmed: AtomicU64,
    /// Refusals by the error code Redis gave (`NOPERM`, `ERR`, ...).
    refused_by: Mutex<BTreeMap<String, u64>>,
    /// Messages received by subscribers.
    pub received: AtomicU64,
    /// Messages a subscriber that fell behind missed (in-process or Redis).
    pub lagged: AtomicU64,
    /// Redis errors (connect, publish, subscribe).
    pub errors: AtomicU64,
    /// Reconnects after an error.
    pub reconnects: AtomicU64,
    /// Subscriptions Redis closed on us (a restart, a `CLIENT KILL`, a
    /// subscriber over its output-buffer limit); they are renewed, and the
    /// messages published in between are missed.
    pub subscriptions_lost: AtomicU64,
    /// Channel subscriptions Redis refused (an ACL): the role goes on
    /// without them.
    pub subscriptions_refused: AtomicU64,
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

    /// Messages offered and not yet published, dropped, refused or counted
    /// unconfirmed: what the publisher holds.
    pub fn in_flight(&self) -> u64 {
        let done = Self::get(&self.published)
            + Self::get(&self.dropped)
            + Self::get(&self.refused)
            + Self::get(&self.unconfirmed);
        Self::get(&self.offered).saturating_sub(done)
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

    /// Counts a refusal with Redis's error code.
    pub(super) fn refused_because(&self, code: &str) {
        if let Ok(mut by) = self.refused_by.lock() {
            let key = if by.contains_key(code) || by.len() < REASONS_KEPT {
                code.to_string()
            } else {
                "other".to_string()
            };
            *by.entry(key).or_default() += 1;
        }
    }

    /// Refusals by Redis's error code.
    pub fn refused_by_reason(&self) -> BTreeMap<String, u64> {
        self.refused_by
            .lock()
            .map(|by| by.clone())
            .unwrap_or_default()
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
