//! The Redis bus: a publisher task that sends batches as pipelines (a few
//! in flight at once, in order), and a thread per subscription; both
//! reconnect with backoff.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
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
    publisher: tokio::task::AbortHandle,
}

impl RedisBackend {
    pub(super) fn start(
        url: &Secret,
        buffer: usize,
        stats: Arc<BusStats>,
        ticks: String,
        cancel: CancellationToken,
        died: CancellationToken,
    ) -> anyhow::Result<Self> {
        // The URL may hold a password: the error names the problem, not the URL.
        let client = redis::Client::open(url.expose())
            .map_err(|e| anyhow::anyhow!("invalid Redis URL: {}", e.kind_name()))
            .context("opening the Redis client")?;
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let task = tokio::spawn(publisher(client.clone(), rx, stats.clone(), ticks, cancel));
        let publisher = task.abort_handle();
        // The publisher ends by itself only when the bus is gone or shut
        // down; a panic (or an abort) would leave every later message
        // dropped, which must end the host instead.
        let counters = stats.clone();
        tokio::spawn(async move {
            if let Err(err) = task.await {
                // What it held (its queue, the batch in hand) is gone.
                let lost = counters.in_flight();
                counters.dropped.fetch_add(lost, Ordering::Relaxed);
                tracing::error!(error = %err, messages_lost = lost, "the Redis publisher task died");
                died.cancel();
            }
        });
        Ok(RedisBackend {
            client,
            tx,
            stats,
            publisher,
        })
    }

    /// Ends the publisher task as a panic would (for tests of what the
    /// host does then).
    pub(super) fn kill_publisher(&self) {
        self.publisher.abort();
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
        let (client, stats) = (self.client.clone(), self.stats.clone());
        let spawned = std::thread::Builder::new()
            .name("redis-subscriber".into())
            .spawn(move || subscriber(client, channels, tx, stats, cancel));
        if let Err(err) = spawned {
            // The subscription's queue closes: its reader sees the end.
            tracing::error!(error = %err, "cannot start a Redis subscriber thread");
        }
    }
}

/// A Redis error's kind, for messages: the kind never holds the URL (or
/// its password), where the full error text might.
pub trait KindName {
    /// The kind, e.g. `IoError`, `AuthenticationFailed`.
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

/// Sends what is offered, in order, one pipeline per batch, with up to
/// [`PIPELINES_IN_FLIGHT`] pipelines sent before the oldest one's replies
/// are read (so Redis works on one while the next is encoded and sent),
/// and reads each message's own reply. The guarantee: **no message is
/// published twice, and none out of order.**
/// - A message Redis refuses (an error reply, e.g. `NOPERM` from an ACL)
///   is dropped and counted by reason; the rest of its batch is published.
/// - A batch not yet sent when the connection is down waits (in order) and
///   is sent after the reconnect; while Redis is down the channel fills and
///   `publish` starts dropping (counted).
/// - Batches whose connection failed after they were sent (an error or a
///   timeout before the replies) may have been applied: they are counted
///   as `unconfirmed`, not resent.
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
    let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(PIPELINES_IN_FLIGHT);
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        // Take the next batch, unless the pipe is full: wait for one only
        // when nothing is in flight, else take what is already queued.
        if batch.is_empty() && in_flight.len() < PIPELINES_IN_FLIGHT {
            if in_flight.is_empty() {
                match rx.recv().await {
                    Some(m) => batch.push(m),
                    None => return,
                }
            }
            while batch.len() < MAX_PIPELINE {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
        }
        let failure = if !batch.is_empty() && in_flight.len() < PIPELINES_IN_FLIGHT {
            match conn.as_ref() {
                None => match connect(&client).await {
                    Ok(c) => {
                        if let Some(since) = down_since.take() {
                            stats.reconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(
                                down_s = since.elapsed().as_secs_f64(),
                                "Redis publisher reconnected"
                            );
                        }
                        stats.set_publisher_down(false);
                        conn = Some(c);
                        continue;
                    }
                    // Nothing was sent: the batch waits for the next attempt.
                    Err(what) => what,
                },
                Some(connection) => {
                    let sent = std::mem::replace(&mut batch, Vec::with_capacity(MAX_PIPELINE));
                    match InFlight::send(connection, sent).await {
                        Ok(pipeline) => {
                            in_flight.push_back(pipeline);
                            continue;
                        }
                        // The connection is gone and this batch never left:
                        // it waits for the reconnect, as an unsent batch.
                        Err((unsent, what)) => {
                            batch = unsent;
                            what
                        }
                    }
                }
            }
        } else {
            // The pipe is full, or nothing more is queued: settle the oldest.
            let Some(oldest) = in_flight.pop_front() else {
                continue;
            };
            let outcome = oldest.replies.await;
            match outcome.and_then(|replies| settle(&oldest.batch, replies, &stats, &ticks)) {
                Ok(()) => {
                    backoff = self::backoff();
                    continue;
                }
                Err(what) => {
                    unconfirmed(&oldest.batch, &stats, &ticks);
                    what
                }
            }
        };
        // The connection failed: whatever else was sent on it is unknown.
        for lost in in_flight.drain(..) {
            unconfirmed(&lost.batch, &stats, &ticks);
        }
        conn = None;
        fail(&stats, &mut down_since, &failure);
        if wait(&cancel, backoff.step()).await {
            // Shut down while Redis is away: what is held is dropped, and
            // counted.
            while let Ok(m) = rx.try_recv() {
                batch.push(m);
            }
            dropped_at_shutdown(&batch, &stats, &ticks);
            return;
        }
    }
}

/// Pipelines sent and not yet answered, at most. Two already keep Redis
/// busy while the publisher encodes the next (eight measured the same as
/// four); more only add to what a failed connection leaves unconfirmed.
/// It must stay below the connection's own request queue (50 in redis
/// 0.32), so that handing a request over never waits (see
/// [`InFlight::send`]); the publisher is the connection's only user.
const PIPELINES_IN_FLIGHT: usize = 4;

/// The replies to one pipeline, or why they did not come.
type Replies = std::pin::Pin<Box<dyn Future<Output = Result<Vec<redis::Value>, String>> + Send>>;

/// A pipeline sent on the connection, its replies still to come.
struct InFlight {
    batch: Vec<Message>,
    replies: Replies,
}

impl InFlight {
    /// Encodes `batch` as one pipeline and hands it to the connection
    /// before returning: requests are queued on the connection's writer in
    /// the order `send` is called, which keeps the batches in order on the
    /// wire. `Err` gives the batch back, unsent: the connection is gone.
    async fn send(
        connection: &redis::aio::MultiplexedConnection,
        batch: Vec<Message>,
    ) -> Result<Self, (Vec<Message>, String)> {
        use redis::aio::ConnectionLike;
        let mut pipe = redis::pipe();
        for m in &batch {
            pipe.publish(&*m.channel, &m.payload);
        }
        let mut connection = connection.clone();
        let count = batch.len();
        // `unconstrained`: tokio's cooperative budget would otherwise let
        // the first poll below return Pending *before* the request is
        // queued (the queue's permit is taken, then the budget checked),
        // and the request would go out later, after newer ones.
        let mut replies: Replies = Box::pin(tokio::task::unconstrained(async move {
            match tokio::time::timeout(
                COMMAND_TIMEOUT,
                connection.req_packed_commands(&pipe, 0, count),
            )
            .await
            {
                Ok(Ok(replies)) => Ok(replies),
                Ok(Err(e)) => Err(format!("publish failed: {}", e.kind_name())),
                Err(_) => Err("publish timed out".to_string()),
            }
        }));
        // The first poll queues the request (the connection's queue holds
        // far more than PIPELINES_IN_FLIGHT requests); the replies are
        // awaited later, oldest first. Done at once, it can only be an
        // error: no reply can have come yet, so the request never left.
        match std::future::poll_fn(|cx| Poll::Ready(replies.as_mut().poll(cx))).await {
            Poll::Pending => Ok(InFlight { batch, replies }),
            Poll::Ready(Err(what)) => Err((batch, what)),
            Poll::Ready(Ok(done)) => Ok(InFlight {
                batch,
                replies: Box::pin(std::future::ready(Ok(done))),
            }),
        }
    }
}

/// Counts each message of an answered batch by its reply. `Err`: the
/// replies do not match the batch (the connection is then distrusted).
fn settle(
    batch: &[Message],
    replies: Vec<redis::Value>,
    stats: &BusStats,
    ticks: &str,
) -> Result<(), String> {
    if replies.len() != batch.len() {
        return Err(format!(
            "{} replies to a pipeline of {}",
            replies.len(),
            batch.len()
        ));
    }
    // Counted once per batch: one atomic add per message is measurable at
    // hundreds of thousands of messages a second.
    let (mut published, mut ticks_published) = (0, 0);
    for (message, reply) in batch.iter().zip(replies) {
        let is_tick = *message.channel == *ticks;
        match reply {
            redis::Value::ServerError(err) => refused(stats, message, err.code(), is_tick),
            _ => {
                published += 1;
                ticks_published += u64::from(is_tick);
            }
        }
    }
    stats.published.fetch_add(published, Ordering::Relaxed);
    stats
        .ticks_published
        .fetch_add(ticks_published, Ordering::Relaxed);
    Ok(())
}

/// Counts what the publisher still held when it was stopped.
fn dropped_at_shutdown(batch: &[Message], stats: &BusStats, ticks: &str) {
    let tick_count = batch.iter().filter(|m| *m.channel == *ticks).count() as u64;
    stats
        .dropped
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats.ticks_dropped.fetch_add(tick_count, Ordering::Relaxed);
    if !batch.is_empty() {
        tracing::warn!(
            messages = batch.len(),
            "stopped while Redis was unreachable; messages not published were dropped"
        );
    }
}

async fn connect(client: &redis::Client) -> Result<redis::aio::MultiplexedConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("connect failed: {}", e.kind_name())),
        Err(_) => Err("connect timed out".into()),
    }
}

/// Counts (and, now and then, logs) a message Redis refused.
fn refused(stats: &BusStats, message: &Message, code: &str, is_tick: bool) {
    let n = stats.refused.fetch_add(1, Ordering::Relaxed);
    if is_tick {
        stats.ticks_refused.fetch_add(1, Ordering::Relaxed);
    }
    stats.refused_because(code);
    if n.is_power_of_two() || n == 0 {
        tracing::warn!(channel = %message.channel, %code, refused_total = n + 1, "Redis refused a message; dropped, not retried");
    }
}

/// Counts a batch whose fate is unknown.
fn unconfirmed(batch: &[Message], stats: &BusStats, ticks: &str) {
    let tick_count = batch.iter().filter(|m| *m.channel == *ticks).count() as u64;
    stats
        .unconfirmed
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats
        .ticks_unconfirmed
        .fetch_add(tick_count, Ordering::Relaxed);
    tracing::warn!(
        messages = batch.len(),
        "Redis connection failed with a batch in flight; counted as unconfirmed, not resent"
    );
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

/// How often a subscription thread waiting for a message looks at its
/// cancellation token.
const SUBSCRIPTION_POLL: Duration = Duration::from_millis(200);

/// One subscription on its own thread, reading with the blocking client:
/// connect, subscribe, forward; on loss, reconnect and resubscribe.
///
/// Why a thread and the blocking client: the async client reads the socket
/// into an unbounded queue, which under overload grows without limit. Here
/// a message is read only when the previous one was handed on (or dropped
/// and counted, when the role's queue is full), so a subscriber that falls
/// behind leaves the backlog in Redis, which cuts it off at its
/// output-buffer limit (counted, and renewed) instead of growing the host.
fn subscriber(
    client: redis::Client,
    channels: Vec<String>,
    tx: mpsc::Sender<Message>,
    stats: Arc<BusStats>,
    cancel: CancellationToken,
) {
    let mut backoff = backoff();
    let mut down = false;
    let mut sessions = 0u64;
    while !cancel.is_cancelled() {
        let mut connected = || {
            if down {
                stats.subscriber_down(false);
                down = false;
            }
            if sessions > 0 {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(?channels, "Redis subscriber reconnected and resubscribed");
            }
            sessions += 1;
        };
        match session(&client, &channels, &tx, &stats, &cancel, &mut connected) {
            Ok(Forwarded::Stopped) => return,
            Ok(Forwarded::Lost) => {
                backoff = self::backoff();
                stats.subscriptions_lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(?channels, "Redis closed our subscription (messages published until it is renewed are missed); reconnecting");
            }
            Err(e) => tracing::debug!(error = %e.kind_name(), "Redis subscribe failed"),
        }
        stats.errors.fetch_add(1, Ordering::Relaxed);
        if !down {
            stats.subscriber_down(true);
            down = true;
        }
        pause(&cancel, backoff.step());
    }
}

/// One connection: subscribe (then `connected`), forward until it ends.
fn session(
    client: &redis::Client,
    channels: &[String],
    tx: &mpsc::Sender<Message>,
    stats: &BusStats,
    cancel: &CancellationToken,
    connected: &mut dyn FnMut(),
) -> redis::RedisResult<Forwarded> {
    let mut connection = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    connection.set_read_timeout(Some(SUBSCRIPTION_POLL))?;
    // One `PubSub` for the connection's life: dropping it unsubscribes.
    let mut pubsub = connection.as_pubsub();
    subscribe_all(&mut pubsub, channels, stats)?;
    connected();
    Ok(forward(&mut pubsub, tx, stats, cancel))
}

/// Sleeps for `delay`, or less if cancelled.
fn pause(cancel: &CancellationToken, delay: Duration) {
    let until = std::time::Instant::now() + delay;
    while !cancel.is_cancelled() {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(SUBSCRIPTION_POLL.min(left));
    }
}

/// Subscribes to every channel Redis allows (a channel an ACL forbids
/// costs only its own messages).
fn subscribe_all(
    pubsub: &mut redis::PubSub<'_>,
    channels: &[String],
    stats: &BusStats,
) -> redis::RedisResult<()> {
    for channel in channels {
        if let Err(err) = pubsub.subscribe(channel) {
            if err.code() != Some("NOPERM") {
                return Err(err);
            }
            let n = stats.subscriptions_refused.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                tracing::warn!(%channel, "Redis refuses this subscription (NOPERM); going on without it");
            }
        }
    }
    Ok(())
}

/// How forwarding ended.
enum Forwarded {
    /// Cancelled, or nobody reads the messages any more.
    Stopped,
    /// The connection was lost.
    Lost,
}

/// Hands every message on, never waiting: a full queue drops (and counts).
fn forward(
    pubsub: &mut redis::PubSub<'_>,
    tx: &mpsc::Sender<Message>,
    stats: &BusStats,
    cancel: &CancellationToken,
) -> Forwarded {
    loop {
        if cancel.is_cancelled() {
            return Forwarded::Stopped;
        }
        let msg = match pubsub.get_message() {
            Ok(msg) => msg,
            Err(err) if err.is_timeout() => continue,
            Err(_) => return Forwarded::Lost,
        };
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        stats.received.fetch_add(1, Ordering::Relaxed);
        let message = Message {
            channel: Arc::from(msg.get_channel_name()),
            payload,
        };
        match tx.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                stats.lagged.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Forwarded::Stopped,
        }
    }
}
