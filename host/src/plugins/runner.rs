//! [`PluginThread`]: one plugin instance on its own OS thread, the one way
//! the host runs a plugin on live traffic (the normalizer in
//! [`crate::pipeline`], the health plugin in [`crate::health_loop`]).
//!
//! Why a thread: an instance is not `Sync`, a call may run for up to its
//! deadline, and no plugin call may ever block an async runtime thread.
//!
//! Two paths lead into the thread:
//! - work items through an [`Inbox`]: bounded, in order; a producer either
//!   waits ([`Inbox::send`]), waits until a deadline
//!   ([`Inbox::send_with_until`]) or gives up at once ([`Inbox::try_send`]);
//! - swaps through a [`Swapper`]: applied between two work items, ahead of
//!   queued work. Every item is served by exactly one version, in arrival
//!   order. The world decides what a swap carries over
//!   ([`World::hand_over`]: the health plugin's state); the replaced
//!   instance is handed back, so that dropping it (unmapping its memory)
//!   happens off the hot path.
//!
//! A watchdog thread makes sure no call holds the plugin for good. The
//! deadline stops guest code, but a call could still be stuck in host code
//! where the deadline cannot reach. A call still running after
//! [`RunnerOptions::stuck_after`] is **abandoned**: its thread is left to
//! finish on its own (its result is discarded, it serves nothing more) and
//! a fresh thread with a fresh instance of the same version takes over the
//! inbox. Abandoned threads keep their memory, so at most
//! [`RunnerOptions::max_stuck`] may be stuck at once; past that the runner
//! reports [`RunnerEvent::Fatal`] and the host should exit so that a
//! supervisor restarts it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::ops::ControlFlow;
//! use std::time::Duration;
//! use tickstock::plugins::{embedded, Limits, NormalizerPlugin, PluginEngine, PluginKind};
//! use tickstock::plugins::runner::PluginThread;
//!
//! let engine = PluginEngine::new(Limits::default(), None)?;
//! let component = std::sync::Arc::new(engine.load(PluginKind::Normalizer, embedded::NORMALIZER)?);
//! let plugin = NormalizerPlugin::new(&engine, component.clone())?;
//! let (thread, inbox) = PluginThread::spawn("normalize", plugin, 64, Default::default(), |plugin, frame: String| {
//!     let _ = plugin.normalize_frame(&frame);
//!     ControlFlow::Continue(())
//! })?;
//! inbox.send(r#"[{"ev":"T","sym":"A","p":1,"s":1,"t":1}]"#.to_string()).await?;
//! let next = NormalizerPlugin::new(&engine, component)?;
//! let swapped = thread.swapper().swap(next, Duration::from_secs(5)).await?;
//! tokio::task::spawn_blocking(move || drop(swapped.old));
//! # Ok(()) }
//! ```

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use super::instance::{CallClock, Plugin, World};
use super::stats::CallStats;

/// How often the watchdog looks at the running call.
const WATCHDOG_POLL: Duration = Duration::from_millis(50);

/// What travels through an inbox: work (with the bytes it holds against
/// the inbox's byte budget), or a nudge to look for a swap.
enum Msg<I> {
    Item(I, usize),
    Wake,
}

/// Why a plugin thread did not take a request.
#[derive(Debug, Error)]
pub enum RunnerError {
    /// The thread has ended (its producer or consumer went away).
    #[error("the {0} thread has stopped")]
    Stopped(&'static str),
    /// The thread did not answer in time (a call is still running).
    #[error("the {thread} thread did not answer within {waited:?}")]
    Timeout {
        /// The thread's name.
        thread: &'static str,
        /// How long the caller waited.
        waited: Duration,
    },
}

/// Why [`Inbox::try_send`] did not queue an item; the item comes back.
#[derive(Debug)]
pub enum Refused<I> {
    /// The queue is full.
    Full(I),
    /// The thread has ended.
    Closed(I),
}

/// Where producers send work to a plugin thread; bounded by a count of
/// items and (when [`RunnerOptions::queue_bytes`] is set) by the bytes the
/// queued items hold. Cheap to clone.
pub struct Inbox<I> {
    tx: mpsc::Sender<Msg<I>>,
    thread: &'static str,
    queued: Arc<QueuedBytes>,
}

/// The bytes the items in an inbox hold, and how many they may; and the
/// signal that room was freed, for a producer waiting for it.
#[derive(Debug)]
struct QueuedBytes {
    now: AtomicU64,
    max: u64,
    /// Notified each time the consumer takes a message (which frees a
    /// place and an item's bytes). `notify_one` keeps one wake-up for a
    /// producer that is about to wait, so a place freed between its failed
    /// attempt and its wait is not missed; with nobody waiting it costs one
    /// atomic. It wakes one waiter: [`Inbox::send_with_until`] is for an
    /// inbox with one producer that waits (the feed reader).
    freed: tokio::sync::Notify,
}

impl QueuedBytes {
    /// Takes `n` bytes of the budget if they fit.
    fn take(&self, n: usize) -> bool {
        let n = n as u64;
        self.now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now.saturating_add(n) <= self.max).then_some(now + n)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.now.fetch_sub(n as u64, Ordering::AcqRel);
        self.freed.notify_one();
    }
}

impl<I> Clone for Inbox<I> {
    fn clone(&self) -> Self {
        Inbox {
            tx: self.tx.clone(),
            thread: self.thread,
            queued: self.queued.clone(),
        }
    }
}

impl<I> Inbox<I> {
    /// Queues `item` if there is room, never waiting.
    pub fn try_send(&self, item: I) -> Result<(), Refused<I>> {
        self.try_send_sized(item, 0)
    }

    /// Queues `item`, which holds `bytes`, if there is room for one more
    /// item and for its bytes; never waits.
    pub fn try_send_sized(&self, item: I, bytes: usize) -> Result<(), Refused<I>> {
        match self.reserve(bytes) {
            Ok(permit) => {
                permit.send(Msg::Item(item, bytes));
                Ok(())
            }
            Err(Refused::Full(())) => Err(Refused::Full(item)),
            Err(Refused::Closed(())) => Err(Refused::Closed(item)),
        }
    }

    /// Like [`Inbox::try_send_sized`], but builds the item only once there
    /// is room for it: under overload most items are refused, and one that
    /// is costly to build (a copy) is then never built.
    pub fn try_send_with(
        &self,
        bytes: usize,
        build: impl FnOnce() -> I,
    ) -> Result<(), Refused<()>> {
        let permit = self.reserve(bytes)?;
        permit.send(Msg::Item(build(), bytes));
        Ok(())
    }

    /// Like [`Inbox::try_send_with`], but when the queue is full it waits
    /// for room until `deadline`; past it the item is refused (and never
    /// built). An item larger than the whole byte budget is refused at
    /// once: no wait could make room for it. One producer at a time may
    /// wait (each freed place wakes one waiter); others may `try_send`.
    pub async fn send_with_until(
        &self,
        bytes: usize,
        deadline: tokio::time::Instant,
        build: impl FnOnce() -> I,
    ) -> Result<(), Refused<()>> {
        let mut last_try = false;
        loop {
            match self.reserve(bytes) {
                Ok(permit) => {
                    permit.send(Msg::Item(build(), bytes));
                    return Ok(());
                }
                Err(Refused::Closed(())) => return Err(Refused::Closed(())),
                Err(Refused::Full(())) if last_try || bytes as u64 > self.queued.max => {
                    return Err(Refused::Full(()))
                }
                Err(Refused::Full(())) => {}
            }
            // Woken when the consumer takes an item; then try again, and
            // once more when the deadline passes. A consumer that ends
            // ends the wait at once.
            tokio::select! {
                () = self.queued.freed.notified() => {}
                () = self.tx.closed() => return Err(Refused::Closed(())),
                () = tokio::time::sleep_until(deadline) => last_try = true,
            }
        }
    }

    /// A place in the queue and `bytes` of its budget, if both are free.
    fn reserve(&self, bytes: usize) -> Result<mpsc::Permit<'_, Msg<I>>, Refused<()>> {
        match self.tx.try_reserve() {
            Ok(permit) if self.queued.take(bytes) => Ok(permit),
            Ok(_) | Err(mpsc::error::TrySendError::Full(())) => Err(Refused::Full(())),
            Err(mpsc::error::TrySendError::Closed(())) => Err(Refused::Closed(())),
        }
    }

    /// Queues `item`, waiting for room.
    pub async fn send(&self, item: I) -> Result<(), RunnerError> {
        self.tx
            .send(Msg::Item(item, 0))
            .await
            .map_err(|_| RunnerError::Stopped(self.thread))
    }

    /// The bytes the queued items hold now.
    pub fn queued_bytes(&self) -> u64 {
        self.queued.now.load(Ordering::Acquire)
    }
}

/// The result of a swap.
pub struct Swapped<W> {
    /// The instance that was replaced: drop it off the hot path.
    pub old: Plugin<W>,
    /// What [`World::hand_over`] said: `None` for a world without state,
    /// `Some(Err(why))` when the new version starts fresh.
    pub state: Option<Result<(), String>>,
    /// How long the thread spent switching (between two items).
    pub pause: Duration,
}

struct SwapRequest<W> {
    plugin: Plugin<W>,
    done: oneshot::Sender<Swapped<W>>,
}

/// Swaps the plugin of a running [`PluginThread`]; cheap to clone.
pub struct Swapper<W> {
    control: std_mpsc::Sender<SwapRequest<W>>,
    wake: Arc<dyn Fn() + Send + Sync>,
    thread: &'static str,
}

impl<W> Clone for Swapper<W> {
    fn clone(&self) -> Self {
        Swapper {
            control: self.control.clone(),
            wake: self.wake.clone(),
            thread: self.thread,
        }
    }
}

impl<W: World> Swapper<W> {
    /// Replaces the thread's plugin with `plugin` between two work items
    /// and returns the old one. Waits at most `timeout` for the thread.
    pub async fn swap(
        &self,
        plugin: Plugin<W>,
        timeout: Duration,
    ) -> Result<Swapped<W>, RunnerError> {
        let (done, rx) = oneshot::channel();
        self.control
            .send(SwapRequest { plugin, done })
            .map_err(|_| RunnerError::Stopped(self.thread))?;
        (self.wake)();
        let mut rx = rx;
        match tokio::time::timeout(timeout, &mut rx).await {
            Ok(Ok(swapped)) => Ok(swapped),
            Ok(Err(_)) => Err(RunnerError::Stopped(self.thread)),
            Err(_) => {
                // Closed first: from here the thread either sees the caller
                // gone (and drops the swap) or has already swapped.
                rx.close();
                match rx.try_recv() {
                    Ok(swapped) => Ok(swapped),
                    Err(_) => Err(RunnerError::Timeout {
                        thread: self.thread,
                        waited: timeout,
                    }),
                }
            }
        }
    }
}

/// Something the runner reports to its owner.
#[derive(Debug, Clone)]
pub enum RunnerEvent {
    /// A call did not come back in time; a fresh thread took over.
    Abandoned {
        /// The thread's name (`normalize`, `health`).
        thread: &'static str,
        /// `name@version` of the plugin whose call was stuck.
        plugin: String,
        /// How long the call had run.
        stuck_for: Duration,
        /// Abandoned threads still stuck, this one included.
        stuck_now: u64,
    },
    /// The runner cannot go on: too many stuck threads, or no fresh
    /// instance could be made. The owner should stop the host.
    Fatal {
        /// The thread's name.
        thread: &'static str,
        /// Why.
        reason: String,
    },
}

/// How the watchdog judges and what it tells.
#[derive(Clone)]
pub struct RunnerOptions {
    /// A call running longer than this is abandoned. `None`: twice the
    /// engine's hard cap ([`super::Limits::hard_cap`]), at least a second.
    pub stuck_after: Option<Duration>,
    /// Abandoned threads that may be stuck at once.
    pub max_stuck: u64,
    /// Bytes the inbox's items may hold together (`None`: no byte bound,
    /// only the count of items).
    pub queue_bytes: Option<u64>,
    /// Told about abandoned threads and fatal conditions.
    pub on_event: Option<Arc<dyn Fn(RunnerEvent) + Send + Sync>>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            stuck_after: None,
            max_stuck: 3,
            queue_bytes: None,
            on_event: None,
        }
    }
}

/// What the watchdog has done.
#[derive(Debug, Default)]
pub struct RunnerStats {
    /// Threads abandoned since start.
    pub abandoned: AtomicU64,
    /// Abandoned threads whose call has not come back yet.
    pub stuck_now: AtomicU64,
}

/// The instance that serves now, as the watchdog sees it.
#[derive(Clone)]
struct Current {
    /// Its calls report here.
    clock: Arc<CallClock>,
    /// Its call counters (a replacement keeps counting into them).
    stats: Arc<CallStats>,
    /// `name@version`.
    label: String,
    /// Its version (a replacement instantiates it).
    component: Arc<super::LoadedComponent>,
}

impl Current {
    fn of<W: World>(plugin: &Plugin<W>, clock: Arc<CallClock>) -> Current {
        Current {
            clock,
            stats: plugin.stats().clone(),
            label: plugin.label().to_string(),
            component: plugin.component().clone(),
        }
    }
}

type Serve<W, I> = dyn Fn(&mut Plugin<W>, I) -> ControlFlow<()> + Send + Sync;

/// What every generation of the thread, and the watchdog, share.
struct Core<W, I> {
    name: &'static str,
    inbox: Mutex<mpsc::Receiver<Msg<I>>>,
    queued: Arc<QueuedBytes>,
    control: Mutex<std_mpsc::Receiver<SwapRequest<W>>>,
    serve: Box<Serve<W, I>>,
    /// The instance that serves now, as the watchdog sees it.
    current: Mutex<Current>,
    engine: super::PluginEngine,
    stopped: Arc<AtomicBool>,
    stats: Arc<RunnerStats>,
    options: RunnerOptions,
}

/// A plugin instance on its own OS thread, serving work items with a
/// handler, swappable between two items, watched for stuck calls.
pub struct PluginThread<W> {
    swapper: Swapper<W>,
    stats: Arc<RunnerStats>,
    // Not the core: the handler (and the channels it holds) must go away
    // when the thread ends, not when this handle does.
    stopped: Arc<AtomicBool>,
}

impl<W: World + Send + 'static> PluginThread<W> {
    /// Starts thread `name` owning `plugin`, with an inbox of `capacity`
    /// items, returned beside the thread, and its watchdog. `serve` handles
    /// one item; it returns `Break` to end the thread (its consumer went
    /// away). The thread also ends when every clone of the [`Inbox`] is
    /// dropped.
    pub fn spawn<I: Send + 'static>(
        name: &'static str,
        plugin: Plugin<W>,
        capacity: usize,
        options: RunnerOptions,
        serve: impl Fn(&mut Plugin<W>, I) -> ControlFlow<()> + Send + Sync + 'static,
    ) -> std::io::Result<(Self, Inbox<I>)> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (control_tx, control_rx) = std_mpsc::channel();
        let waker = tx.downgrade();
        let wake = Arc::new(move || {
            // A full inbox means the thread is busy and looks for swaps
            // after its current item anyway.
            if let Some(tx) = waker.upgrade() {
                let _ = tx.try_send(Msg::Wake);
            }
        });
        let stats = Arc::new(RunnerStats::default());
        let stopped = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(QueuedBytes {
            now: AtomicU64::new(0),
            max: options.queue_bytes.unwrap_or(u64::MAX),
            freed: tokio::sync::Notify::new(),
        });
        let clock = Arc::new(CallClock::default());
        let core = Arc::new(Core {
            name,
            inbox: Mutex::new(rx),
            queued: queued.clone(),
            control: Mutex::new(control_rx),
            serve: Box::new(serve),
            current: Mutex::new(Current::of(&plugin, clock.clone())),
            engine: plugin.engine().clone(),
            stopped: stopped.clone(),
            stats: stats.clone(),
            options,
        });
        start_generation(&core, plugin, clock)?;
        let watched = core.clone();
        std::thread::Builder::new()
            .name(format!("{name}-watchdog"))
            .spawn(move || watchdog(&watched))?;
        let swapper = Swapper {
            control: control_tx,
            wake,
            thread: name,
        };
        Ok((
            PluginThread {
                swapper,
                stats,
                stopped,
            },
            Inbox {
                tx,
                thread: name,
                queued,
            },
        ))
    }

    /// Where to send swaps.
    pub fn swapper(&self) -> Swapper<W> {
        self.swapper.clone()
    }

    /// What the watchdog has done.
    pub fn stats(&self) -> &Arc<RunnerStats> {
        &self.stats
    }

    /// Whether the thread has ended (its inbox closed or its consumer went
    /// away).
    pub fn is_finished(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// Starts a thread serving with `plugin`, reporting its calls on `clock`.
fn start_generation<W: World + Send + 'static, I: Send + 'static>(
    core: &Arc<Core<W, I>>,
    mut plugin: Plugin<W>,
    clock: Arc<CallClock>,
) -> std::io::Result<()> {
    plugin.set_clock(clock.clone());
    let core = core.clone();
    std::thread::Builder::new()
        .name(core.name.into())
        .spawn(move || run(&core, plugin, &clock))?;
    Ok(())
}

fn run<W: World, I>(core: &Core<W, I>, mut plugin: Plugin<W>, clock: &Arc<CallClock>) {
    loop {
        // A thread whose stuck call came back serves nothing more, not
        // even a swap meant for the thread that replaced it.
        if clock.is_abandoned() {
            break;
        }
        // Swaps happen here, between two items.
        let request = core.control.lock().ok().and_then(|rx| rx.try_recv().ok());
        if let Some(request) = request {
            swap_now(core, &mut plugin, request, clock);
            continue;
        }
        let msg = {
            let Ok(mut inbox) = core.inbox.lock() else {
                break;
            };
            // A thread whose stuck call came back serves nothing more.
            if clock.is_abandoned() {
                break;
            }
            inbox.blocking_recv()
        };
        match msg {
            Some(Msg::Item(item, bytes)) => {
                core.queued.give_back(bytes);
                if (core.serve)(&mut plugin, item).is_break() {
                    core.stopped.store(true, Ordering::Release);
                    break;
                }
            }
            Some(Msg::Wake) => core.queued.freed.notify_one(),
            None => {
                core.stopped.store(true, Ordering::Release);
                break;
            }
        }
        if clock.is_abandoned() {
            break;
        }
    }
    if clock.is_abandoned() {
        core.stats.stuck_now.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(thread = core.name, plugin = %plugin.label(), "an abandoned plugin call came back; its thread ends");
    } else {
        tracing::debug!(thread = core.name, "plugin thread stopped");
    }
}

fn swap_now<W: World, I>(
    core: &Core<W, I>,
    plugin: &mut Plugin<W>,
    request: SwapRequest<W>,
    clock: &Arc<CallClock>,
) {
    let SwapRequest {
        plugin: mut new,
        done,
    } = request;
    if done.is_closed() {
        // The caller gave up waiting and reported the swap as failed: it
        // must not happen behind its back.
        return;
    }
    let start = Instant::now();
    // The hand-over runs calls on both instances: both are watched.
    new.set_clock(clock.clone());
    let state = W::hand_over(plugin, &mut new);
    if clock.is_abandoned() {
        // The hand-over got stuck and another thread took over with the
        // old version: this swap did not happen (the caller sees the
        // thread stop).
        return;
    }
    let previous = core
        .current
        .lock()
        .ok()
        .map(|mut current| std::mem::replace(&mut *current, Current::of(&new, clock.clone())));
    let old = std::mem::replace(plugin, new);
    let pause = start.elapsed();
    if let Some(Err(why)) = &state {
        tracing::warn!(from = %old.label(), to = %plugin.label(), reason = %why, "the new version starts with fresh state");
    }
    if let Err(unwanted) = done.send(Swapped { old, state, pause }) {
        // The caller gave up in the meantime: undo, so that what serves is
        // what the caller believes serves.
        *plugin = unwanted.old;
        if let (Some(previous), Ok(mut current)) = (previous, core.current.lock()) {
            *current = previous;
        }
        return;
    }
    tracing::info!(to = %plugin.label(), pause_us = pause.as_micros() as u64, "plugin swapped");
}

/// Abandons a call that runs past `stuck_after` and starts a fresh thread.
fn watchdog<W: World + Send + 'static, I: Send + 'static>(core: &Arc<Core<W, I>>) {
    let stuck_after = core
        .options
        .stuck_after
        .unwrap_or_else(|| (core.engine.limits().hard_cap() * 2).max(Duration::from_secs(1)));
    while !core.stopped.load(Ordering::Acquire) {
        std::thread::sleep(WATCHDOG_POLL);
        let Some(current) = core.current.lock().ok().map(|c| c.clone()) else {
            return;
        };
        let Some((stamp, ran)) = current.clock.running() else {
            continue;
        };
        if ran < stuck_after || !current.clock.abandon(stamp) {
            continue;
        }
        current.stats.record(ran, true, true);
        if let Err(reason) = replace_thread(core, &current, ran) {
            tracing::error!(thread = core.name, %reason, "plugin runner cannot go on");
            tell(
                core,
                RunnerEvent::Fatal {
                    thread: core.name,
                    reason,
                },
            );
            return;
        }
    }
}

/// Counts the abandoned thread and starts a fresh one in its place.
fn replace_thread<W: World + Send + 'static, I: Send + 'static>(
    core: &Arc<Core<W, I>>,
    stuck: &Current,
    ran: Duration,
) -> Result<(), String> {
    core.stats.abandoned.fetch_add(1, Ordering::AcqRel);
    let stuck_now = core.stats.stuck_now.fetch_add(1, Ordering::AcqRel) + 1;
    let label = stuck.label.clone();
    tracing::error!(thread = core.name, plugin = %label, stuck_ms = ran.as_millis() as u64, stuck_now, "a plugin call did not return; abandoning its thread");
    tell(
        core,
        RunnerEvent::Abandoned {
            thread: core.name,
            plugin: label,
            stuck_for: ran,
            stuck_now,
        },
    );
    if stuck_now > core.options.max_stuck {
        return Err(format!(
            "{stuck_now} {} threads are stuck in plugin calls (at most {} may be)",
            core.name, core.options.max_stuck
        ));
    }
    let mut plugin = Plugin::<W>::new(&core.engine, stuck.component.clone())
        .map_err(|e| format!("no fresh instance to replace the stuck one: {e}"))?;
    plugin.share_stats(stuck.stats.clone());
    let clock = Arc::new(CallClock::default());
    if let Ok(mut current) = core.current.lock() {
        *current = Current::of(&plugin, clock.clone());
    }
    start_generation(core, plugin, clock).map_err(|e| format!("cannot start a thread: {e}"))
}

fn tell<W, I>(core: &Core<W, I>, event: RunnerEvent) {
    if let Some(on_event) = &core.options.on_event {
        on_event(event);
    }
}
