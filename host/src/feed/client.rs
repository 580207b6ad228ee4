//! The Massive WebSocket client: one connection, kept alive for as long as
//! the host runs.
//!
//! Per session: connect, wait for `connected`, `auth`, subscribe in chunks,
//! then read. Each frame goes into a bounded queue. When the queue is full
//! the reader waits for room, up to `queue_wait` per frame (a burst is then
//! held in the socket's buffers instead of lost, and a sender faster than
//! the host is slowed to its pace); a frame still without room is dropped
//! and counted, and so is every next frame, at once, until the queue takes
//! one again: a stalled pipeline (a stuck plugin) costs one wait per
//! session, never a reader that stops reading. Overload that lasts, with a
//! normalizer that keeps freeing places, is pushed back to the server
//! (which may answer `slow_consumer`); a zero wait drops at once and never
//! pushes back. Any drop of the socket (close, error, 30 s of
//! silence) ends the session and the loop reconnects after a backoff delay;
//! `auth_failed` ends the loop with an error; `max_connections` waits long.
//! The API key is sent to the server and nowhere else: no log line or error
//! contains it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The largest frame accepted unless configured otherwise (Massive frames
/// are a few KiB; a full-market burst a few hundred).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 << 20;

/// How long the reader waits for room in a full frame queue before it
/// drops the frame, unless configured otherwise. A healthy normalizer frees
/// a place every few hundred microseconds even at full load; 20 ms covers a
/// swap or a fresh instance after a trap, and a pipeline that stalls for
/// good stops the reader only that long before it drops at read speed.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_millis(20);
use tokio_util::sync::CancellationToken;

use super::protocol::{self, Action};
use super::stats::{bump, FeedState, FeedStats};
use crate::backoff::{Backoff, BackoffPolicy};
use crate::plugins::runner::{Inbox, Refused};
use crate::secret::Secret;

/// One frame as read from the socket.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame text (a JSON array of events, unparsed).
    pub text: Utf8Bytes,
    /// When it was read, Unix ms.
    pub received_ms: i64,
}

/// Timing of the client; the defaults follow Massive's official clients.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Opening the socket.
    pub connect_timeout: Duration,
    /// Waiting for `connected` and for the auth answer.
    pub handshake_timeout: Duration,
    /// Ping interval.
    pub ping_every: Duration,
    /// Silence after which the socket is considered dead.
    pub read_deadline: Duration,
    /// Reconnect delays.
    pub backoff: BackoffPolicy,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            ping_every: Duration::from_secs(20),
            read_deadline: Duration::from_secs(30),
            backoff: BackoffPolicy::default(),
        }
    }
}

/// Why the feed stopped for good.
#[derive(Debug, Error)]
pub enum FeedError {
    /// The server refused the API key. Retrying would not help.
    #[error("Massive authentication failed ({message}): check MASSIVE_API_KEY and the plan it belongs to")]
    AuthFailed {
        /// The server's message.
        message: String,
    },
    /// The URL cannot be used.
    #[error("invalid Massive URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The normalization pipeline stopped taking frames: nothing would
    /// process what the feed reads.
    #[error("the normalization pipeline stopped; no frame can be processed")]
    PipelineStopped,
}

/// How one session ended.
enum Ended {
    /// Shutdown requested.
    Stopped,
    /// The pipeline closed its queue.
    PipelineGone,
    /// `auth_failed`.
    AuthFailed(String),
    /// `max_connections`: another connection took the key.
    Evicted(String),
    /// Anything else: reconnect.
    Dropped(String),
}

/// The feed client. Build it, then [`FeedClient::run`] it on a task.
pub struct FeedClient {
    url: String,
    key: Secret,
    topics: Vec<String>,
    timing: Timing,
    stats: Arc<FeedStats>,
    frames: Inbox<Frame>,
    max_frame_bytes: usize,
    queue_wait: Duration,
}

/// Whether the reader may wait for room in the frame queue: not after a
/// wait ran out, until the queue takes a frame again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    WaitFor,
    DropAtOnce,
}

impl FeedClient {
    /// A client for `url` that sends frames to `frames`.
    pub fn new(
        url: impl Into<String>,
        key: Secret,
        topics: Vec<String>,
        frames: Inbox<Frame>,
        stats: Arc<FeedStats>,
    ) -> Self {
        FeedClient {
            url: url.into(),
            key,
            topics,
            timing: Timing::default(),
            stats,
            frames,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            queue_wait: DEFAULT_QUEUE_WAIT,
        }
    }

    /// Waits up to `wait` for room in a full frame queue before dropping a
    /// frame (the default is [`DEFAULT_QUEUE_WAIT`]; zero drops at once).
    pub fn with_queue_wait(mut self, wait: Duration) -> Self {
        self.queue_wait = wait;
        self
    }

    /// Refuses frames larger than `bytes` (the default is
    /// [`DEFAULT_MAX_FRAME_BYTES`]).
    pub fn with_max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// Overrides the timing (tests use short ones).
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Connects and reconnects until `cancel` fires (`Ok`) or the key is
    /// refused (`Err`).
    pub async fn run(self, cancel: CancellationToken) -> Result<(), FeedError> {
        if !(self.url.starts_with("ws://") || self.url.starts_with("wss://")) {
            return Err(FeedError::InvalidUrl {
                url: self.url.clone(),
                reason: "it must start with ws:// or wss://".into(),
            });
        }
        let mut backoff = Backoff::new(self.timing.backoff);
        let mut sessions = 0u64;
        loop {
            bump(&self.stats.connect_attempts);
            self.stats.set_state(FeedState::Connecting, None);
            let mut streaming_since = None;
            let ended = tokio::select! {
                ended = self.session(&mut streaming_since, &mut sessions) => ended,
                () = cancel.cancelled() => Ended::Stopped,
            };
            let uptime = streaming_since
                .map(|t: Instant| t.elapsed())
                .unwrap_or_default();
            let delay = match ended {
                Ended::Stopped => {
                    self.stats
                        .set_state(FeedState::Stopped, Some("shut down".into()));
                    return Ok(());
                }
                Ended::PipelineGone => {
                    self.stats.set_state(
                        FeedState::Stopped,
                        Some("the normalization pipeline stopped".into()),
                    );
                    return Err(FeedError::PipelineStopped);
                }
                Ended::AuthFailed(message) => {
                    self.stats
                        .set_state(FeedState::Stopped, Some("authentication failed".into()));
                    return Err(FeedError::AuthFailed { message });
                }
                Ended::Evicted(message) => {
                    let delay = backoff.after_eviction();
                    let issue =
                        "max_connections: another connection is using this API key".to_string();
                    tracing::error!(
                        server_message = %message,
                        retry_in_s = delay.as_secs_f64(),
                        "Massive closed the feed with max_connections: another client is using this API key. \
                         Stop the other client; this host backs off instead of fighting it"
                    );
                    self.stats.set_state(FeedState::Disconnected, Some(issue));
                    delay
                }
                Ended::Dropped(reason) => {
                    let delay = backoff.after_connection(uptime);
                    tracing::warn!(%reason, uptime_s = uptime.as_secs_f64(), retry_in_s = delay.as_secs_f64(), "feed disconnected; reconnecting");
                    self.stats.set_state(
                        FeedState::Disconnected,
                        Some(format!("feed disconnected: {reason}")),
                    );
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => {
                    self.stats.set_state(FeedState::Stopped, Some("shut down".into()));
                    return Ok(());
                }
            }
        }
    }

    /// One connection, from opening the socket to its end.
    async fn session(&self, streaming_since: &mut Option<Instant>, sessions: &mut u64) -> Ended {
        let (mut sink, mut stream) = match self.connect().await {
            Ok(ws) => ws.split(),
            Err(ended) => return ended,
        };
        // One per session: a stalled pipeline costs one wait, not one per
        // phase of the connection.
        let mut room = Room::WaitFor;
        if let Err(ended) = self.handshake(&mut sink, &mut stream, &mut room).await {
            return ended;
        }
        bump(&self.stats.authenticated);
        if *sessions > 0 {
            bump(&self.stats.reconnects);
        }
        *sessions += 1;
        for chunk in protocol::subscribe_chunks(&self.topics) {
            let subscribe = Action::new(protocol::action::SUBSCRIBE, &chunk);
            if let Err(e) = send_json(&mut sink, &subscribe).await {
                return Ended::Dropped(format!("sending subscribe failed: {e}"));
            }
        }
        self.stats.set_state(FeedState::Streaming, None);
        *streaming_since = Some(Instant::now());
        tracing::info!(url = %self.url, topics = self.topics.len(), "feed authenticated and subscribed");
        self.stream(&mut sink, &mut stream, &mut room).await
    }

    /// Opens the WebSocket.
    async fn connect(&self) -> Result<Socket, Ended> {
        let timeout = self.timing.connect_timeout;
        // A larger frame is refused as its header arrives, before its bytes
        // are read: one huge frame cannot grow the host.
        let limits = WebSocketConfig::default()
            .max_frame_size(Some(self.max_frame_bytes))
            .max_message_size(Some(self.max_frame_bytes));
        let connect =
            tokio_tungstenite::connect_async_with_config(self.url.as_str(), Some(limits), false);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok((ws, _response))) => Ok(ws),
            Ok(Err(err)) => Err(Ended::Dropped(format!("connect failed: {err}"))),
            Err(_) => Err(Ended::Dropped(format!(
                "connect timed out after {timeout:?}"
            ))),
        }
    }

    /// `connected`, then `auth`, until `auth_success`. Data that arrives
    /// early is kept.
    async fn handshake(
        &self,
        sink: &mut SocketSink,
        stream: &mut SocketStream,
        room: &mut Room,
    ) -> Result<(), Ended> {
        let limit = self.timing.handshake_timeout;
        let mut phase = FeedState::Connecting;
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        while phase != FeedState::Streaming {
            let msg = tokio::select! {
                msg = stream.next() => msg,
                () = &mut deadline => {
                    let awaited = if phase == FeedState::Connecting { "`connected`" } else { "auth answer" };
                    return Err(Ended::Dropped(format!("no {awaited} within {limit:?}")));
                }
            };
            let text = match self.read(msg) {
                Read::Text(text) => text,
                Read::Skip => continue,
                Read::End(ended) => return Err(ended),
            };
            for status in protocol::statuses(&text) {
                match status.status.as_str() {
                    protocol::status::CONNECTED if phase == FeedState::Connecting => {
                        phase = FeedState::Authenticating;
                        self.stats.set_state(phase, None);
                        let auth = Action::new(protocol::action::AUTH, self.key.expose());
                        if let Err(e) = send_json(sink, &auth).await {
                            return Err(Ended::Dropped(format!("sending auth failed: {e}")));
                        }
                    }
                    protocol::status::AUTH_SUCCESS => phase = FeedState::Streaming,
                    protocol::status::AUTH_FAILED => return Err(Ended::AuthFailed(status.message)),
                    protocol::status::AUTH_TIMEOUT => {
                        return Err(Ended::Dropped("server reported auth_timeout".into()))
                    }
                    protocol::status::MAX_CONNECTIONS => {
                        return Err(Ended::Evicted(status.message))
                    }
                    _ => {}
                }
            }
            if let Some(ended) = self.forward(text, room).await {
                return Err(ended);
            }
        }
        Ok(())
    }

    /// Reads until the connection ends: frames go to the pipeline, status
    /// events are acted on, a ping keeps the socket alive, silence ends it.
    async fn stream(
        &self,
        sink: &mut SocketSink,
        stream: &mut SocketStream,
        room: &mut Room,
    ) -> Ended {
        let t = self.timing;
        let mut ping = tokio::time::interval(t.ping_every);
        ping.tick().await;
        let mut last_read = Instant::now();
        loop {
            let silence = tokio::time::sleep_until((last_read + t.read_deadline).into());
            let msg = tokio::select! {
                msg = stream.next() => msg,
                _ = ping.tick() => {
                    if let Err(e) = sink.send(Message::Ping(Default::default())).await {
                        return Ended::Dropped(format!("ping failed: {e}"));
                    }
                    continue;
                }
                () = silence => return Ended::Dropped(format!("no data or pong for {:?}", t.read_deadline)),
            };
            last_read = Instant::now();
            let text = match self.read(msg) {
                Read::Text(text) => text,
                Read::Skip => continue,
                Read::End(ended) => return ended,
            };
            if protocol::may_hold_status(&text) {
                for status in protocol::statuses(&text) {
                    if let Some(ended) = self.on_status(&status) {
                        return ended;
                    }
                }
            }
            if let Some(ended) = self.forward(text, room).await {
                return ended;
            }
        }
    }

    /// Classifies one read from the socket.
    fn read(&self, msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Read {
        match msg {
            None => Read::End(Ended::Dropped("server closed the socket".into())),
            Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(err))) => {
                bump(&self.stats.frames_dropped_oversize);
                tracing::warn!(error = %err, max_bytes = self.max_frame_bytes, "refused a frame larger than --max-frame-bytes; reconnecting");
                Read::End(Ended::Dropped(format!(
                    "a frame over the size limit: {err}"
                )))
            }
            Some(Err(err)) => Read::End(Ended::Dropped(format!("socket error: {err}"))),
            Some(Ok(Message::Text(text))) => Read::Text(text),
            Some(Ok(Message::Binary(bytes))) => match Utf8Bytes::try_from(bytes) {
                Ok(text) => Read::Text(text),
                Err(_) => {
                    bump(&self.stats.frames_dropped_binary);
                    Read::Skip
                }
            },
            Some(Ok(Message::Close(frame))) => Read::End(Ended::Dropped(match frame {
                Some(f) => format!("server closed the socket ({} {})", f.code, f.reason),
                None => "server closed the socket".into(),
            })),
            Some(Ok(_)) => Read::Skip, // ping (answered by tungstenite), pong, raw frame
        }
    }

    /// Acts on a status event seen while streaming.
    fn on_status(&self, status: &protocol::Status) -> Option<Ended> {
        match status.status.as_str() {
            protocol::status::SUCCESS => bump(&self.stats.subscribe_acks),
            protocol::status::MAX_CONNECTIONS => {
                bump(&self.stats.max_connections);
                return Some(Ended::Evicted(status.message.clone()));
            }
            protocol::status::SLOW_CONSUMER => {
                bump(&self.stats.slow_consumer);
                tracing::warn!(server_message = %status.message, "Massive reports this client as a slow consumer");
            }
            protocol::status::FORCE_DISCONNECT => {
                bump(&self.stats.force_disconnect);
                tracing::warn!(server_message = %status.message, "Massive forced a disconnect");
            }
            protocol::status::AUTH_FAILED => {
                return Some(Ended::AuthFailed(status.message.clone()))
            }
            protocol::status::ERROR => {
                bump(&self.stats.status_errors);
                tracing::warn!(server_message = %status.message, "Massive reported an error");
            }
            _ => {}
        }
        None
    }

    /// Queues a frame for normalization: waits for room up to `queue_wait`
    /// unless `room` says a wait just ran out (see the module's doc).
    async fn forward(&self, text: Utf8Bytes, room: &mut Room) -> Option<Ended> {
        bump(&self.stats.frames_received);
        self.stats
            .bytes_received
            .fetch_add(text.len() as u64, std::sync::atomic::Ordering::Relaxed);
        // A queued frame is a copy out of the socket's read buffer:
        // tungstenite hands out slices of it, and a queued slice pins the
        // whole buffer chunk it came from (measured: 4,096 queued 10 KB
        // frames held ~170 MiB), which would make the queue's byte budget a
        // fiction. The copy is made only for a frame the queue takes.
        let received_ms = chrono::Utc::now().timestamp_millis();
        let build = || Frame {
            text: Utf8Bytes::from(text.as_str().to_owned()),
            received_ms,
        };
        let mut queued = self.frames.try_send_with(text.len(), build);
        if matches!(queued, Err(Refused::Full(())))
            && *room == Room::WaitFor
            && !self.queue_wait.is_zero()
        {
            let started = tokio::time::Instant::now();
            let mut waited = None;
            // Shutdown may cancel the wait: the frame is then dropped.
            let in_hand = InHand(Some(&self.stats));
            queued = self
                .frames
                .send_with_until(text.len(), started + self.queue_wait, || {
                    waited = Some(started.elapsed());
                    build()
                })
                .await;
            in_hand.settled();
            let waited = waited.unwrap_or_else(|| started.elapsed());
            bump(&self.stats.queue_waits);
            self.stats.queue_wait_micros.fetch_add(
                waited.as_micros() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        match queued {
            Ok(()) => {
                *room = Room::WaitFor;
                None
            }
            Err(Refused::Full(())) => {
                *room = Room::DropAtOnce;
                let dropped = self
                    .stats
                    .frames_dropped_queue_full
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if dropped.is_power_of_two() || dropped == 0 {
                    tracing::warn!(
                        dropped_total = dropped + 1,
                        "normalization queue full; dropping frames"
                    );
                }
                None
            }
            Err(Refused::Closed(())) => Some(Ended::PipelineGone),
        }
    }
}

/// A frame waiting for room. Dropped unsettled (the wait was cancelled:
/// shutdown), it counts the frame as dropped, so that every frame received
/// is normalized or counted dropped.
struct InHand<'a>(Option<&'a FeedStats>);

impl InHand<'_> {
    fn settled(mut self) {
        self.0 = None;
    }
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        if let Some(stats) = self.0 {
            bump(&stats.frames_dropped_queue_full);
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type SocketSink = futures_util::stream::SplitSink<Socket, Message>;
type SocketStream = futures_util::stream::SplitStream<Socket>;

enum Read {
    Text(Utf8Bytes),
    Skip,
    End(Ended),
}

async fn send_json<S>(sink: &mut S, value: &Action<'_>) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    // The error of a failed send never contains the payload (the key).
    sink.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())
}
