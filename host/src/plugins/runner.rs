//! [`PluginThread`]: one plugin instance on its own OS thread, the one way
//! the host runs a plugin on live traffic (the normalizer in
//! [`crate::pipeline`], the health plugin in [`crate::health_loop`]).
//!
//! Why a thread: an instance is not `Sync`, a call may run for up to its
//! deadline, and no plugin call may ever block an async runtime thread.
//!
//! Two paths lead into the thread:
//! - work items through an [`Inbox`]: bounded, in order; a producer either
//!   waits ([`Inbox::send`]) or gives up at once ([`Inbox::try_send`]);
//! - swaps through a [`Swapper`]: applied between two work items, ahead of
//!   queued work. Every item is served by exactly one version, in arrival
//!   order. The world decides what a swap carries over
//!   ([`World::hand_over`]: the health plugin's state); the replaced
//!   instance is handed back, so that dropping it (unmapping its memory)
//!   happens off the hot path.
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
//! let (thread, inbox) = PluginThread::spawn("normalize", plugin, 64, |plugin, frame: String| {
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
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use super::instance::{Plugin, World};

/// What travels through an inbox: work, or a nudge to look for a swap.
enum Msg<I> {
    Item(I),
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

/// Where producers send work to a plugin thread; bounded, cheap to clone.
pub struct Inbox<I> {
    tx: mpsc::Sender<Msg<I>>,
    thread: &'static str,
}

impl<I> Clone for Inbox<I> {
    fn clone(&self) -> Self {
        Inbox {
            tx: self.tx.clone(),
            thread: self.thread,
        }
    }
}

impl<I> Inbox<I> {
    /// Queues `item` if there is room, never waiting.
    pub fn try_send(&self, item: I) -> Result<(), Refused<I>> {
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(Msg::Item(item));
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(Refused::Full(item)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(Refused::Closed(item)),
        }
    }

    /// Queues `item`, waiting for room.
    pub async fn send(&self, item: I) -> Result<(), RunnerError> {
        self.tx
            .send(Msg::Item(item))
            .await
            .map_err(|_| RunnerError::Stopped(self.thread))
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
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(swapped)) => Ok(swapped),
            Ok(Err(_)) => Err(RunnerError::Stopped(self.thread)),
            Err(_) => Err(RunnerError::Timeout {
                thread: self.thread,
                waited: timeout,
            }),
        }
    }
}

/// A plugin instance on its own OS thread, serving work items with a
/// handler, swappable between two items.
pub struct PluginThread<W> {
    swapper: Swapper<W>,
    thread: std::thread::JoinHandle<()>,
}

impl<W: World + Send + 'static> PluginThread<W> {
    /// Starts thread `name` owning `plugin`, with an inbox of `capacity`
    /// items, returned beside the thread. `serve` handles one item; it
    /// returns `Break` to end the thread (its consumer went away). The
    /// thread also ends when every clone of the [`Inbox`] is dropped.
    pub fn spawn<I: Send + 'static>(
        name: &'static str,
        plugin: Plugin<W>,
        capacity: usize,
        serve: impl FnMut(&mut Plugin<W>, I) -> ControlFlow<()> + Send + 'static,
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
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(name, plugin, rx, control_rx, serve))?;
        let swapper = Swapper {
            control: control_tx,
            wake,
            thread: name,
        };
        Ok((PluginThread { swapper, thread }, Inbox { tx, thread: name }))
    }

    /// Where to send swaps.
    pub fn swapper(&self) -> Swapper<W> {
        self.swapper.clone()
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

fn run<W: World, I>(
    name: &'static str,
    mut plugin: Plugin<W>,
    mut inbox: mpsc::Receiver<Msg<I>>,
    control: std_mpsc::Receiver<SwapRequest<W>>,
    mut serve: impl FnMut(&mut Plugin<W>, I) -> ControlFlow<()>,
) {
    loop {
        // Swaps happen here, between two items.
        while let Ok(request) = control.try_recv() {
            swap_now(&mut plugin, request);
        }
        match inbox.blocking_recv() {
            Some(Msg::Item(item)) => {
                if serve(&mut plugin, item).is_break() {
                    break;
                }
            }
            Some(Msg::Wake) => {}
            None => break,
        }
    }
    tracing::debug!(thread = name, "plugin thread stopped");
}

fn swap_now<W: World>(plugin: &mut Plugin<W>, request: SwapRequest<W>) {
    let SwapRequest {
        plugin: mut new,
        done,
    } = request;
    let start = Instant::now();
    let state = W::hand_over(plugin, &mut new);
    let old = std::mem::replace(plugin, new);
    let pause = start.elapsed();
    match &state {
        Some(Err(why)) => {
            tracing::warn!(from = %old.label(), to = %plugin.label(), reason = %why, "plugin swapped; the new version starts with fresh state")
        }
        _ => {
            tracing::info!(from = %old.label(), to = %plugin.label(), pause_us = pause.as_micros() as u64, carried_state = state.is_some(), "plugin swapped")
        }
    }
    // If the caller gave up waiting, the old instance is dropped here.
    let _ = done.send(Swapped { old, state, pause });
}
