//! The Redis bus: a publisher task that sends batches as pipelines, and a
//! task per subscription; both reconnect with backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BusStats, Message};
use crate::backoff::{Backoff, BackoffPolicy};
use crate::secret::Secret;

/// Most messages sent in one pipeline.
const MAX_PIPELINE: usize = 1_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

fn backoff() -> Backoff {
    Backoff::new(BackoffPolicy {
        initial: Duration::from_millis(100),
        factor: 2.0,
        max: Duration::from_secs(5),
        jitter: 0.2,
        ..BackoffPolicy::default()
    })
}

pub(super) struct RedisBackend {
    client: redis::Client,
    tx: mpsc::Sender<Message>,
    stats: Arc<BusStats>,
}

impl RedisBackend {
    pub(super) fn start(
        url: &Secret,
        buffer: usize,
        stats: Arc<BusStats>,
        ticks: String,
        cancel: CancellationToken,
    ) -> anyhow::Result<Self> {
        // The URL may hold a password: the error names the problem, not the URL.
        let client = redis::Client::open(url.expose())
            .map_err(|e| anyhow::anyhow!("invalid Redis URL: {}", e.kind_name()))
            .context("opening the Redis client")?;
        let (tx, rx) = mpsc::channel(buffer.max(1));
        tokio::spawn(publisher(client.clone(), rx, stats.clone(), ticks, cancel));
        Ok(RedisBackend { client, tx, stats })
    }

    pub(super) fn publish(&self, message: Message) -> bool {
        self.tx.try_send(message).is_ok()
    }

    pub(super) fn subscribe(
        &self,
        channels: Vec<String>,
        tx: mpsc::Sender<Message>,
        cancel: CancellationToken,
    ) {
        tokio::spawn(subscriber(
            self.client.clone(),
            channels,
            tx,
            self.stats.clone(),
            cancel,
        ));
    }
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

/// Sends what is offered, in order, one pipeline per batch. A batch that
/// fails is retried on a new connection, so nothing accepted is lost; while
/// Redis is down the channel fills and `publish` starts dropping.
async fn publisher(
    client: redis::Client,
    mut rx: mpsc::Receiver<Message>,
    stats: Arc<BusStats>,
    ticks: String,
    cancel: CancellationToken,
) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut backoff = backoff();
    let mut batch: Vec<Message> = Vec::with_capacity(MAX_PIPELINE);
    let mut down_since: Option<std::time::Instant> = None;
    let mut failure: Option<String> = None;
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(m) => batch.push(m),
                None => return,
            }
            while batch.len() < MAX_PIPELINE {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
        }
        if conn.is_none() {
            let connected =
                tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
                    .await;
            match connected {
                Ok(Ok(c)) => {
                    if let Some(since) = down_since.take() {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            down_s = since.elapsed().as_secs_f64(),
                            "Redis publisher reconnected"
                        );
                    }
                    stats.set_publisher_down(false);
                    conn = Some(c);
                }
                Ok(Err(e)) => failure = Some(format!("connect failed: {}", e.kind_name())),
                Err(_) => failure = Some("connect timed out".into()),
            }
        }
        if let Some(connection) = conn.as_mut() {
            let mut pipe = redis::pipe();
            for m in &batch {
                pipe.publish(&*m.channel, &m.payload).ignore();
            }
            match tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<()>(connection)).await {
                Ok(Ok(())) => {
                    let tick_count = batch.iter().filter(|m| *m.channel == *ticks).count() as u64;
                    stats
                        .published
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    stats
                        .ticks_published
                        .fetch_add(tick_count, Ordering::Relaxed);
                    batch.clear();
                    backoff = self::backoff();
                }
                Ok(Err(e)) => failure = Some(format!("publish failed: {}", e.kind_name())),
                Err(_) => failure = Some("publish timed out".into()),
            }
        }
        // Any failure: drop the connection, keep the batch, retry after a delay.
        if let Some(what) = failure.take() {
            conn = None;
            fail(&stats, &mut down_since, &what);
            if wait(&cancel, backoff.step()).await {
                return;
            }
        }
    }
}

fn fail(stats: &BusStats, down_since: &mut Option<std::time::Instant>, what: &str) {
    stats.errors.fetch_add(1, Ordering::Relaxed);
    stats.set_publisher_down(true);
    if down_since.is_none() {
        *down_since = Some(std::time::Instant::now());
        tracing::warn!(error = what, "Redis unreachable; buffering and retrying");
    }
}

/// Sleeps unless cancelled; returns whether it was cancelled.
async fn wait(cancel: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// One subscription: connect, subscribe, forward; on loss, reconnect and
/// resubscribe.
async fn subscriber(
    client: redis::Client,
    channels: Vec<String>,
    tx: mpsc::Sender<Message>,
    stats: Arc<BusStats>,
    cancel: CancellationToken,
) {
    let mut backoff = backoff();
    let mut down = false;
    let mut connected_once = false;
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            for channel in &channels {
                pubsub.subscribe(channel).await?;
            }
            Ok::<_, redis::RedisError>(pubsub)
        };
        let result = tokio::select! {
            () = cancel.cancelled() => return,
            r = tokio::time::timeout(CONNECT_TIMEOUT, subscribed) => r,
        };
        match result {
            Ok(Ok(pubsub)) => {
                if down {
                    stats.subscriber_down(false);
                    down = false;
                }
                if connected_once {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(?channels, "Redis subscriber reconnected and resubscribed");
                }
                connected_once = true;
                backoff = self::backoff();
                let mut stream = pubsub.into_on_message();
                loop {
                    let msg = tokio::select! {
                        () = cancel.cancelled() => return,
                        m = stream.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    let payload: String = match msg.get_payload() {
                        Ok(p) => p,
                        Err(_) => continue,
                    };
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    let message = Message {
                        channel: Arc::from(msg.get_channel_name()),
                        payload,
                    };
                    if tx.send(message).await.is_err() {
                        return;
                    }
                }
                tracing::warn!(?channels, "Redis subscription lost; reconnecting");
            }
            Ok(Err(e)) => tracing::debug!(error = %e.kind_name(), "Redis subscribe failed"),
            Err(_) => tracing::debug!("Redis subscribe timed out"),
        }
        stats.errors.fetch_add(1, Ordering::Relaxed);
        if !down {
            stats.subscriber_down(true);
            down = true;
        }
        if wait(&cancel, backoff.step()).await {
            return;
        }
    }
}
