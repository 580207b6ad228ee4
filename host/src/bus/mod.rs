//! The event bus: Redis pub/sub, or an in-process bus with the same
//! interface for the embedded default (no Redis URL).
//!
//! [`Bus`] is the one interface: [`Bus::publish`] never waits (a bounded
//! buffer absorbs bursts and outages; what does not fit is dropped and
//! counted), and [`Bus::subscribe`] returns a stream of messages that
//! survives reconnects. With Redis, a publisher task sends each batch as one
//! pipeline, in order, and reconnects with backoff; subscribers resubscribe
//! after a reconnect.

mod channels;
mod memory;
mod redis;
mod stats;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::redis::KindName;
pub use channels::Channels;
pub use stats::BusStats;

use crate::secret::Secret;

/// One message on one channel.
#[derive(Debug, Clone)]
pub struct Message {
    /// The channel name.
    pub channel: Arc<str>,
    /// The payload (a JSON document).
    pub payload: String,
}

enum Backend {
    Redis(redis::RedisBackend),
    Memory(memory::MemoryBackend),
}

struct Inner {
    backend: Backend,
    stats: Arc<BusStats>,
    channels: Channels,
    ticks: Arc<str>,
    cancel: CancellationToken,
    /// Cancelled if the Redis publisher task died.
    publisher_died: CancellationToken,
}

/// A handle to the bus; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

/// A subscription: messages in the order the bus delivered them.
pub struct Subscription {
    rx: mpsc::Receiver<Message>,
}

impl Subscription {
    /// The next message; `None` once the bus shut down.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// A message if one is ready.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.rx.try_recv().ok()
    }
}

impl Bus {
    /// A Redis bus. Connects lazily: an unreachable server is retried with
    /// backoff, and shows in [`BusStats::is_connected`].
    pub fn redis(url: &Secret, channels: Channels, buffer: usize) -> anyhow::Result<Bus> {
        let stats = Arc::new(BusStats::new_connected());
        let cancel = CancellationToken::new();
        let died = CancellationToken::new();
        let backend = redis::RedisBackend::start(
            url,
            buffer,
            stats.clone(),
            channels.ticks(),
            cancel.clone(),
            died.clone(),
        )?;
        Ok(Bus::assemble(
            Backend::Redis(backend),
            stats,
            channels,
            cancel,
            died,
        ))
    }

    /// An in-process bus.
    pub fn memory(channels: Channels) -> Bus {
        let stats = Arc::new(BusStats::new_connected());
        let backend = memory::MemoryBackend::new(stats.clone());
        Bus::assemble(
            Backend::Memory(backend),
            stats,
            channels,
            CancellationToken::new(),
            CancellationToken::new(),
        )
    }

    fn assemble(
        backend: Backend,
        stats: Arc<BusStats>,
        channels: Channels,
        cancel: CancellationToken,
        publisher_died: CancellationToken,
    ) -> Bus {
        let ticks: Arc<str> = channels.ticks().into();
        Bus {
            inner: Arc::new(Inner {
                backend,
                stats,
                channels,
                ticks,
                cancel,
                publisher_died,
            }),
        }
    }

    /// Whether this is the in-process bus.
    pub fn is_memory(&self) -> bool {
        matches!(self.inner.backend, Backend::Memory(_))
    }

    /// The channel names.
    pub fn channels(&self) -> &Channels {
        &self.inner.channels
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<BusStats> {
        &self.inner.stats
    }

    /// The ticks channel name, shared (no allocation per tick).
    pub fn ticks_channel(&self) -> &Arc<str> {
        &self.inner.ticks
    }

    /// Publishes without waiting. Returns `false` if the message was
    /// dropped (buffer full), which is counted.
    pub fn publish(&self, channel: &Arc<str>, payload: String) -> bool {
        let stats = &self.inner.stats;
        stats.offered.fetch_add(1, Ordering::Relaxed);
        let message = Message {
            channel: channel.clone(),
            payload,
        };
        let accepted = match &self.inner.backend {
            Backend::Redis(r) => r.publish(message),
            Backend::Memory(m) => m.publish(message),
        };
        if !accepted {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            if **channel == *self.inner.ticks {
                stats.ticks_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        accepted
    }

    /// Publishes to a channel given by name.
    pub fn publish_to(&self, channel: &str, payload: String) -> bool {
        self.publish(&Arc::from(channel), payload)
    }

    /// Publishes an event (one of [`crate::events`]) as JSON. Events are
    /// plain structs that always serialize; a failure is logged, not
    /// published.
    pub fn publish_event(&self, channel: &str, event: &impl serde::Serialize) -> bool {
        match serde_json::to_string(event) {
            Ok(json) => self.publish_to(channel, json),
            Err(err) => {
                tracing::error!(%channel, error = %err, "cannot serialize an event");
                false
            }
        }
    }

    /// Subscribes to `channels`; `capacity` bounds the delivery queue.
    pub fn subscribe(&self, channels: Vec<String>, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        match &self.inner.backend {
            Backend::Redis(r) => r.subscribe(channels, tx, self.inner.cancel.clone()),
            Backend::Memory(m) => m.subscribe(channels, tx, self.inner.cancel.clone()),
        }
        Subscription { rx }
    }

    /// Waits until everything offered so far was published or dropped, or
    /// `timeout` passes; returns whether it drained.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let stats = &self.inner.stats;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if stats.in_flight() == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Resolves to `true` if the Redis publisher task dies (nothing more
    /// would be published), or to `false` once the bus shut down. It holds
    /// no handle to the bus, so waiting on it keeps nothing alive.
    pub fn publisher_died(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let died = self.inner.publisher_died.clone();
        let shut_down = self.inner.cancel.clone();
        async move {
            tokio::select! {
                () = died.cancelled() => true,
                () = shut_down.cancelled() => false,
            }
        }
    }

    /// Ends the Redis publisher task as a panic would, so tests can check
    /// that the host stops with an error then. No effect in-process.
    #[doc(hidden)]
    pub fn kill_publisher(&self) {
        if let Backend::Redis(r) = &self.inner.backend {
            r.kill_publisher();
        }
    }

    /// Stops the bus's background tasks (subscriptions end).
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }
}
