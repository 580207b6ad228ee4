//! A private `redis-server` per test, and a plain Redis subscriber that
//! records everything, as an external consumer would.

use std::time::Duration;

pub use crate::redis_server::RedisServer;

use super::prefix;

/// A message as an external consumer sees it: channel, parsed JSON, arrival.
#[derive(Debug, Clone)]
pub struct Seen {
    pub channel: String,
    pub json: serde_json::Value,
    pub at: std::time::Instant,
}

/// Subscribes (pattern `PREFIX:*`) with a plain Redis client, the way a
/// Python consumer would, and records everything, reconnecting if Redis
/// restarts.
pub struct Consumer {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Consumer {
    pub async fn start(url: &str, prefix: &str) -> Consumer {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let client = redis::Client::open(url).unwrap();
        let pattern = format!("{prefix}:*");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let (s, st) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while !st.is_cancelled() {
                let Ok(mut pubsub) = client.get_async_pubsub().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if pubsub.psubscribe(&pattern).await.is_err() {
                    continue;
                }
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
                let mut stream = pubsub.into_on_message();
                loop {
                    let msg = tokio::select! {
                        () = st.cancelled() => return,
                        m = stream.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    let payload: String = msg.get_payload().unwrap();
                    let json = serde_json::from_str(&payload)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {payload}"));
                    s.lock().unwrap().push(Seen {
                        channel: msg.get_channel_name().to_string(),
                        json,
                        at: std::time::Instant::now(),
                    });
                }
            }
        });
        ready_rx.await.unwrap();
        Consumer { seen, stop }
    }

    /// Everything seen on `channel` (full name) so far.
    pub fn on(&self, channel: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.channel == channel)
            .cloned()
            .collect()
    }

    /// Everything seen so far, in arrival order.
    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) for a message on `channel`, arriving from
    /// now on, that `matches`; panics with `what` on timeout.
    pub async fn wait_for_new(
        &self,
        channel: &str,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) {
        let seen = self.count(channel);
        super::wait_until(what, timeout, || {
            self.on(channel).iter().skip(seen).any(|m| matches(&m.json))
        })
        .await;
    }

    /// How many messages were seen on `channel`.
    pub fn count(&self, channel: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.channel == channel)
            .count()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A private Redis, the channel names of a fresh prefix for `test`, and a
/// consumer already subscribed to all of them.
pub async fn redis_and_consumer(test: &str) -> (RedisServer, tickstock::bus::Channels, Consumer) {
    let redis = RedisServer::start();
    let prefix = prefix(test);
    let consumer = Consumer::start(&redis.url(), &prefix).await;
    (redis, tickstock::bus::Channels::new(prefix), consumer)
}
