//! The simulator's WebSocket server: Massive's protocol on path `/stocks`,
//! message for message (status events and texts, per-topic acks, `T.*`,
//! one connection per key with `max_connections` eviction, `auth_failed`
//! for a wrong key), serving trades from the shared [`Market`].

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::market::Market;
use crate::feed::protocol::{self, action, status as st, Action, StatusEvent};

/// Faults the simulator can inject, for tests.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Drop the socket (no close frame) after every N data frames.
    pub drop_every: Option<u64>,
    /// After every N data frames, also send junk: malformed JSON, a
    /// non-array, and an unknown `ev`.
    pub malformed_every: Option<u64>,
    /// After every N data frames, also send one frame of this many bytes
    /// (a JSON array padded with spaces): (N, bytes).
    pub huge_frame_every: Option<(u64, usize)>,
    /// Wait this long before answering `auth`.
    pub auth_delay: Duration,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Accept only this key (`None`: any key).
    pub key: Option<String>,
    /// Trades per second across all subscribed symbols; 0 = as fast as the
    /// client reads, replaying frames encoded once a second (the same
    /// trades repeat within that second).
    pub rate: f64,
    /// Events per frame.
    pub batch: usize,
    /// Seed of the market.
    pub seed: u64,
    /// Symbols, most active first.
    pub universe: Vec<String>,
    /// Injected faults.
    pub faults: Faults,
    /// Keep a log of every trade sent (for tests).
    pub record: bool,
    /// Close connections that have not authenticated after this long.
    pub auth_timeout: Duration,
    /// How often a paced connection sends what is due ([`PACE_EVERY`]).
    pub pace_every: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            key: None,
            rate: 200.0,
            batch: 10,
            seed: 1,
            universe: Vec::new(),
            faults: Faults::default(),
            record: false,
            pace_every: PACE_EVERY,
            auth_timeout: Duration::from_secs(10),
        }
    }
}

/// A trade as sent, for tests to compare with what arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct SentTrade {
    /// Symbol.
    pub symbol: String,
    /// Sequence number.
    pub seq: u64,
    /// Price.
    pub price: f64,
    /// Size.
    pub size: u64,
    /// Timestamp.
    pub timestamp: i64,
    /// When its frame was handed to the socket (in the log; when it was
    /// generated, before).
    pub sent_at: Instant,
}

/// Simulator counters.
#[derive(Debug, Default)]
pub struct SimulatorStats {
    /// WebSocket connections accepted.
    pub connections: AtomicU64,
    /// Successful authentications.
    pub auth_success: AtomicU64,
    /// Refused authentications.
    pub auth_failed: AtomicU64,
    /// Connections evicted by a newer one with the same key.
    pub evictions: AtomicU64,
    /// Subscribe messages handled.
    pub subscribes: AtomicU64,
    /// Data frames sent.
    pub frames_sent: AtomicU64,
    /// Trades sent.
    pub trades_sent: AtomicU64,
    /// Junk frames sent.
    pub junk_sent: AtomicU64,
    /// Sockets dropped on purpose.
    pub drops: AtomicU64,
    trades: Mutex<Vec<SentTrade>>,
}

impl SimulatorStats {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
    /// Every trade sent so far (only with `record`).
    pub fn sent_trades(&self) -> Vec<SentTrade> {
        self.trades.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    stats: Arc<SimulatorStats>,
    cancel: CancellationToken,
    /// Cancelled once the server and every connection ended.
    ended: CancellationToken,
}

struct Shared {
    config: SimulatorConfig,
    market: Mutex<Market>,
    stats: Arc<SimulatorStats>,
    /// Key -> (connection id, eviction signal) of its current connection.
    sessions: Mutex<HashMap<String, (u64, oneshot::Sender<()>)>>,
    next_id: AtomicU64,
}

impl Simulator {
    /// Binds `listen` and starts serving.
    pub async fn start(listen: &str, config: SimulatorConfig) -> anyhow::Result<Simulator> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("simulator cannot listen on {listen}"))?;
        let addr = listener.local_addr().context("simulator address")?;
        let stats = Arc::new(SimulatorStats::default());
        let market = Market::new(&config.universe, config.seed);
        let shared = Arc::new(Shared {
            config,
            market: Mutex::new(market),
            stats: stats.clone(),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let ended = CancellationToken::new();
        let end = ended.clone();
        tokio::spawn(async move {
            // Connections are tracked so that `shutdown` returns only once
            // every one ended: the sent-trades log is final then.
            let connections = tokio_util::task::TaskTracker::new();
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            let shared = shared.clone();
                            let stop = stop.clone();
                            connections.spawn(async move {
                                if let Err(err) = connection(shared, stream, stop).await {
                                    tracing::debug!(%peer, error = %err, "simulator connection ended with an error");
                                }
                            });
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "simulator accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            connections.close();
            connections.wait().await;
            end.cancel();
        });
        tracing::info!(%addr, "simulator listening on ws://{addr}/stocks");
        Ok(Simulator {
            addr,
            stats,
            cancel,
            ended,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/stocks`.
    pub fn url(&self) -> String {
        format!("ws://{}/stocks", self.addr)
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<SimulatorStats> {
        &self.stats
    }

    /// Stops accepting, ends every connection and waits until they ended:
    /// afterwards the counters and the sent-trades log are final.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.ended.cancelled().await;
    }

    /// A token that stops the simulator when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// A frame holding one status event.
fn status(status: &str, message: &str) -> String {
    protocol::status_frame(&[StatusEvent::new(status, message)])
}

/// What a connection subscribed to.
#[derive(Default)]
struct Subscriptions {
    trades: Picker,
    quotes: Picker,
    seconds: BTreeSet<usize>,
    minutes: BTreeSet<usize>,
    trade_set: BTreeSet<usize>,
    quote_set: BTreeSet<usize>,
}

/// Picks symbols in proportion to their activity.
#[derive(Default)]
struct Picker {
    indices: Vec<usize>,
    cumulative: Vec<f64>,
}

impl Picker {
    fn rebuild(&mut self, market: &Market, set: &BTreeSet<usize>) {
        self.indices = set.iter().copied().collect();
        let mut total = 0.0;
        self.cumulative = self
            .indices
            .iter()
            .map(|&i| {
                total += market.weight(i);
                total
            })
            .collect();
    }
    fn pick(&self, u: f64) -> Option<usize> {
        let total = *self.cumulative.last()?;
        let target = u * total;
        let pos = self.cumulative.partition_point(|&c| c < target);
        self.indices.get(pos.min(self.indices.len() - 1)).copied()
    }
    fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    #[allow(clippy::result_large_err)] // the callback's signature is tungstenite's
    let check_path = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() == "/stocks" {
            Ok(resp)
        } else {
            let mut err = ErrorResponse::new(Some(format!(
                "unknown market path {}; use /stocks",
                req.uri().path()
            )));
            *err.status_mut() = StatusCode::NOT_FOUND;
            Err(err)
        }
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, check_path).await?;
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::text(status(
        st::CONNECTED,
        "Connected Successfully",
    )))
    .await?;

    // Authentication.
    let key = tokio::select! {
        key = wait_for_auth(&mut stream) => key,
        () = tokio::time::sleep(shared.config.auth_timeout) => {
            sink.send(Message::text(status(st::AUTH_TIMEOUT, "No authentication request received."))).await?;
            return Ok(());
        }
        () = stop.cancelled() => return Ok(()),
    };
    let Some(key) = key else { return Ok(()) };
    if !shared.config.faults.auth_delay.is_zero() {
        tokio::time::sleep(shared.config.faults.auth_delay).await;
    }
    if shared.config.key.as_deref().is_some_and(|k| k != key) {
        shared.stats.auth_failed.fetch_add(1, Ordering::Relaxed);
        sink.send(Message::text(status(
            st::AUTH_FAILED,
            "authentication failed",
        )))
        .await?;
        let _ = sink.close().await;
        return Ok(());
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (evict_tx, mut evicted) = oneshot::channel();
    if let Ok(mut sessions) = shared.sessions.lock() {
        if let Some((_, previous)) = sessions.insert(key.clone(), (id, evict_tx)) {
            let _ = previous.send(());
        }
    }
    shared.stats.auth_success.fetch_add(1, Ordering::Relaxed);
    sink.send(Message::text(status(st::AUTH_SUCCESS, "authenticated")))
        .await?;

    let result = serve(&shared, &mut sink, &mut stream, &mut evicted, &stop).await;
    if let Ok(mut sessions) = shared.sessions.lock() {
        if sessions.get(&key).is_some_and(|(owner, _)| *owner == id) {
            sessions.remove(&key);
        }
    }
    result
}

async fn wait_for_auth<S>(stream: &mut S) -> Option<String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(Ok(msg)) = stream.next().await {
        if let Message::Text(text) = msg {
            if let Ok(request) = serde_json::from_str::<Action<'_>>(&text) {
                if request.action == action::AUTH {
                    return Some(request.params.into_owned());
                }
            }
        }
    }
    None
}

type Sink = futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, Message>;
type Source = futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<TcpStream>>;

/// The text of the `max_connections` status, as Massive words it.
const EVICTED: &str = "Maximum number of websocket connections exceeded. You have reached the connection limit for your account. Please contact support at https://massive.com/contact to increase your limit.";

/// Serves an authenticated connection until it ends.
async fn serve(
    shared: &Shared,
    sink: &mut Sink,
    stream: &mut Source,
    evicted: &mut oneshot::Receiver<()>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let config = &shared.config;
    let mut subs = Subscriptions::default();
    let mut ticker = tokio::time::interval(config.pace_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pace = Pace::new(config.rate, config.batch.max(1));
    let mut emitter = Emitter::new(config.batch.max(1));
    loop {
        let streaming = !subs.trades.is_empty() || !subs.quotes.is_empty();
        let due = tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            _ = &mut *evicted => {
                shared.stats.evictions.fetch_add(1, Ordering::Relaxed);
                sink.send(Message::text(status(st::MAX_CONNECTIONS, EVICTED))).await?;
                let _ = sink.close().await;
                return Ok(());
            }
            msg = stream.next() => {
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        let reply = handle_action(shared, &mut subs, &text);
                        // Pooled frames were of the old subscriptions.
                        emitter.pool.clear();
                        // Trades are owed from the first subscription on,
                        // not from the connection's start.
                        let now_streaming = !subs.trades.is_empty() || !subs.quotes.is_empty();
                        if now_streaming && !streaming {
                            pace.restart();
                        }
                        if let Some(reply) = reply {
                            sink.send(Message::text(reply)).await?;
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                    Some(Ok(_)) => continue,
                }
            }
            // No timer while nothing is subscribed: an idle connection
            // costs no wake-ups.
            _ = ticker.tick(), if streaming && config.rate > 0.0 => pace.due(),
            () = std::future::ready(()), if streaming && config.rate <= 0.0 => pace.batch as u64,
        };
        let sent = if config.rate <= 0.0 {
            emitter.send_pooled(shared, sink, &subs).await?
        } else {
            let events = emitter.events(shared, &subs, due as usize);
            emitter.send(shared, sink, events).await?
        };
        if sent == Sent::Dropped {
            return Ok(());
        }
    }
}

/// How often a paced simulator looks at what is due, by default.
/// Fine-grained, so that at 10,000 trades/s a burst is 10 trades (one
/// frame of 10), not 100: coarse pacing shows up as latency in every
/// measurement downstream.
pub const PACE_EVERY: Duration = Duration::from_millis(1);
/// Trades that do not fill a frame of `batch` wait at most this long.
const PARTIAL_FRAME_AFTER: Duration = Duration::from_millis(10);

/// How many trades are due at a fixed rate (0: a batch at a time, as fast
/// as the client reads).
struct Pace {
    rate: f64,
    batch: usize,
    start: Instant,
    emitted: u64,
    last_sent: Instant,
}

impl Pace {
    fn new(rate: f64, batch: usize) -> Pace {
        Pace {
            rate,
            batch,
            start: Instant::now(),
            emitted: 0,
            last_sent: Instant::now(),
        }
    }

    /// Starts counting from now (streaming starts).
    fn restart(&mut self) {
        self.emitted = 0;
        self.start = Instant::now();
        self.last_sent = self.start;
    }

    /// Trades to send now: whole frames of `batch` (so `--batch` and the
    /// faults counted in frames mean the same at any pacing), or what is
    /// owed once it waited [`PARTIAL_FRAME_AFTER`]. After a stall it
    /// catches up by at most one second.
    fn due(&mut self) -> u64 {
        let target = (self.rate * self.start.elapsed().as_secs_f64()) as u64;
        let second = self.rate.ceil() as u64;
        let owed = target
            .saturating_sub(self.emitted)
            .min(second + self.batch as u64);
        let batch = self.batch as u64;
        let due = if owed >= batch || self.last_sent.elapsed() >= PARTIAL_FRAME_AFTER {
            if owed >= batch {
                owed / batch * batch
            } else {
                owed
            }
        } else {
            0
        };
        if due > 0 {
            self.last_sent = Instant::now();
        }
        self.emitted = self.emitted.max(target.saturating_sub(second)) + due;
        due
    }
}

/// Whether a connection goes on after a send.
#[derive(PartialEq, Eq)]
enum Sent {
    Open,
    /// The `drop_every` fault dropped the socket.
    Dropped,
}

/// One event's JSON, and the trade it carries (for the sent log).
type Event = (String, Option<SentTrade>);

/// Events encoded at once at full speed (`--rate 0`), in frames of
/// `--batch` (at least one frame).
const POOL_EVENTS: usize = 6_400;
/// How long a pool of frames is re-sent before it is encoded anew (with
/// new prices and timestamps).
const POOL_FOR: Duration = Duration::from_secs(1);

/// A frame as sent, with the events it holds (for the sent log).
type Frame = Arc<(Utf8Bytes, Vec<Event>)>;

/// Turns due trades and closed aggregate windows into frames, with the
/// injected faults.
struct Emitter {
    batch: usize,
    frames: u64,
    second: i64,
    minute: i64,
    /// At full speed: frames encoded once, re-sent in turn (see
    /// [`Emitter::send_pooled`]).
    pool: Vec<Frame>,
    pooled_at: Instant,
    next: usize,
}

impl Emitter {
    fn new(batch: usize) -> Emitter {
        let second = chrono::Utc::now().timestamp_millis() / 1000;
        Emitter {
            batch,
            frames: 0,
            second,
            minute: second / 60,
            pool: Vec::new(),
            pooled_at: Instant::now(),
            next: 0,
        }
    }

    /// At full speed (`--rate 0`) the simulator must not be what limits a
    /// throughput test, so a frame costs one socket write: a replay mode.
    /// About [`POOL_EVENTS`] events are encoded once a second (and when the
    /// subscriptions change) and their frames re-sent in turn: the same
    /// trades, in the same order, each time round (the sent log records
    /// each sending). The aggregates of the closed windows go out once,
    /// before the pool's trades, and count each trade once, however often
    /// it was re-sent.
    async fn send_pooled(
        &mut self,
        shared: &Shared,
        sink: &mut Sink,
        subs: &Subscriptions,
    ) -> anyhow::Result<Sent> {
        if self.pool.is_empty() || self.pooled_at.elapsed() >= POOL_FOR {
            let windows = self.events(shared, subs, 0);
            if self.send(shared, sink, windows).await? == Sent::Dropped {
                return Ok(Sent::Dropped);
            }
            let now = chrono::Utc::now().timestamp_millis();
            let frames = (POOL_EVENTS / self.batch).max(1);
            let events = generate(shared, subs, self.batch * frames, now);
            self.pool = events
                .chunks(self.batch)
                .map(|chunk| Arc::new((Utf8Bytes::from(frame_text(chunk)), chunk.to_vec())))
                .collect();
            self.pooled_at = Instant::now();
            self.next = 0;
        }
        let Some(frame) = self.pool.get(self.next % self.pool.len().max(1)).cloned() else {
            return Ok(Sent::Open); // nothing subscribed trades
        };
        self.next += 1;
        self.send_frame(shared, sink, Message::Text(frame.0.clone()), &frame.1)
            .await
    }

    /// `due` trades (and quotes), plus the aggregates of every second and
    /// minute that closed since the last call.
    fn events(&mut self, shared: &Shared, subs: &Subscriptions, due: usize) -> Vec<Event> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut out = generate(shared, subs, due, now);
        let (sec, min) = (now / 1000, now / 60_000);
        if sec != self.second {
            let (start, end) = (self.second * 1000, sec * 1000);
            out.extend(close_windows(shared, &subs.seconds, false, start, end));
            self.second = sec;
        }
        if min != self.minute {
            let (start, end) = (self.minute * 60_000, min * 60_000);
            out.extend(close_windows(shared, &subs.minutes, true, start, end));
            self.minute = min;
        }
        out
    }

    /// Sends `events` in frames of `batch`, counting and logging trades,
    /// and injects the configured faults.
    async fn send(
        &mut self,
        shared: &Shared,
        sink: &mut Sink,
        events: Vec<Event>,
    ) -> anyhow::Result<Sent> {
        for chunk in events.chunks(self.batch) {
            let frame = Message::text(frame_text(chunk));
            if self.send_frame(shared, sink, frame, chunk).await? == Sent::Dropped {
                return Ok(Sent::Dropped);
            }
        }
        Ok(Sent::Open)
    }

    /// Sends one data frame holding `chunk`, counts and logs it, then
    /// injects the faults due after it.
    async fn send_frame(
        &mut self,
        shared: &Shared,
        sink: &mut Sink,
        frame: Message,
        chunk: &[Event],
    ) -> anyhow::Result<Sent> {
        let faults = &shared.config.faults;
        // Stamped before the write: a task descheduled after writing must
        // not make the frame look younger than it is.
        let writing_at = Instant::now();
        sink.send(frame).await?;
        self.frames += 1;
        record(shared, chunk, writing_at);
        let every = |n: Option<u64>| n.is_some_and(|n| n > 0 && self.frames.is_multiple_of(n));
        if let Some((n, bytes)) = faults.huge_frame_every {
            if every(Some(n)) {
                let huge = format!("[{}]", " ".repeat(bytes.saturating_sub(2)));
                sink.send(Message::text(huge)).await?;
                shared.stats.junk_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        if every(faults.malformed_every) {
            send_junk(shared, sink).await?;
        }
        if every(faults.drop_every) {
            shared.stats.drops.fetch_add(1, Ordering::Relaxed);
            sink.flush().await?;
            // Returning drops the socket without a close frame.
            return Ok(Sent::Dropped);
        }
        Ok(Sent::Open)
    }
}

/// A data frame: the events' JSON as one array.
fn frame_text(chunk: &[Event]) -> String {
    let body: Vec<&str> = chunk.iter().map(|(json, _)| json.as_str()).collect();
    format!("[{}]", body.join(","))
}

/// Counts a sent frame and, with `record`, logs its trades.
fn record(shared: &Shared, chunk: &[Event], sent_at: Instant) {
    let trades: Vec<&SentTrade> = chunk.iter().filter_map(|(_, t)| t.as_ref()).collect();
    shared.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
    shared
        .stats
        .trades_sent
        .fetch_add(trades.len() as u64, Ordering::Relaxed);
    if shared.config.record {
        if let Ok(mut log) = shared.stats.trades.lock() {
            log.extend(trades.into_iter().map(|t| SentTrade {
                sent_at,
                ..t.clone()
            }));
        }
    }
}

/// Malformed JSON, a non-array, and an unknown `ev`.
async fn send_junk(shared: &Shared, sink: &mut Sink) -> anyhow::Result<()> {
    for junk in [
        r#"[{"ev":"T","sym":"BROKEN","p":"#,
        r#"{"not":"an array"}"#,
        r#"[{"ev":"XQ","pair":"BTC-USD","bp":1.0}]"#,
    ] {
        sink.send(Message::text(junk)).await?;
        shared.stats.junk_sent.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Generates `n` trades (and as many quotes, if quotes are subscribed).
fn generate(shared: &Shared, subs: &Subscriptions, n: usize, now: i64) -> Vec<Event> {
    let mut out = Vec::with_capacity(n * 2);
    let Ok(mut market) = shared.market.lock() else {
        return out;
    };
    for _ in 0..n {
        let u = market.unit();
        if let Some(trade) = subs.trades.pick(u).and_then(|i| market.trade(i, now)) {
            let sent = SentTrade {
                symbol: trade.sym.clone(),
                seq: trade.q,
                price: trade.p,
                size: trade.s,
                timestamp: trade.t,
                sent_at: Instant::now(),
            };
            if let Ok(json) = serde_json::to_string(&trade) {
                out.push((json, Some(sent)));
            }
        }
        let u = market.unit();
        if let Some(quote) = subs.quotes.pick(u).and_then(|i| market.quote(i, now)) {
            if let Ok(json) = serde_json::to_string(&quote) {
                out.push((json, None));
            }
        }
    }
    out
}

fn close_windows(
    shared: &Shared,
    set: &BTreeSet<usize>,
    minute: bool,
    start: i64,
    end: i64,
) -> Vec<Event> {
    let Ok(mut market) = shared.market.lock() else {
        return Vec::new();
    };
    set.iter()
        .filter_map(|&i| market.close_window(i, minute, start, end))
        .filter_map(|a| serde_json::to_string(&a).ok())
        .map(|json| (json, None))
        .collect()
}

/// Handles `subscribe` / `unsubscribe`; returns the ack frame.
fn handle_action(shared: &Shared, subs: &mut Subscriptions, text: &str) -> Option<String> {
    let request: Action<'_> = serde_json::from_str(text).ok()?;
    let subscribe = match request.action.as_ref() {
        action::SUBSCRIBE => true,
        action::UNSUBSCRIBE => false,
        action::AUTH => return Some(status(st::ERROR, "already authenticated")),
        other => return Some(status(st::ERROR, &format!("unknown action: {other}"))),
    };
    shared.stats.subscribes.fetch_add(1, Ordering::Relaxed);
    let Ok(mut market) = shared.market.lock() else {
        return None;
    };
    let acks: Vec<StatusEvent<'_>> = request
        .params
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|topic| apply_topic(&mut market, subs, topic, subscribe))
        .collect();
    let (trade_set, quote_set) = (subs.trade_set.clone(), subs.quote_set.clone());
    subs.trades.rebuild(&market, &trade_set);
    subs.quotes.rebuild(&market, &quote_set);
    Some(protocol::status_frame(&acks))
}

/// (Un)subscribes one topic (`T.AAPL`, `AM.*`); returns its ack.
fn apply_topic(
    market: &mut Market,
    subs: &mut Subscriptions,
    topic: &str,
    subscribe: bool,
) -> StatusEvent<'static> {
    let Some((channel, symbol)) = topic.split_once('.') else {
        return StatusEvent::new(st::ERROR, format!("invalid topic: {topic}"));
    };
    let set = match channel {
        "T" => &mut subs.trade_set,
        "Q" => &mut subs.quote_set,
        "A" => &mut subs.seconds,
        "AM" => &mut subs.minutes,
        _ => return StatusEvent::new(st::ERROR, format!("invalid channel: {channel}")),
    };
    let indices: Vec<usize> = if symbol == "*" {
        (0..market.len()).collect()
    } else {
        vec![market.ensure(symbol)]
    };
    for i in indices {
        if subscribe {
            set.insert(i);
        } else {
            set.remove(&i);
        }
    }
    let verb = if subscribe {
        "subscribed to"
    } else {
        "unsubscribed to"
    };
    StatusEvent::new(st::SUCCESS, format!("{verb}: {topic}"))
}
