//! One live plugin instance ([`Plugin`]): a store, its instance, and the
//! call discipline every plugin call goes through (deadline armed, errors
//! classified, a broken instance replaced by a fresh one). The world's own
//! calls are in `normalizer.rs` and `health.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::Instance;
use wasmtime::{Store, Trap};

use super::bindings::PluginInfo;
use super::ctx::{PluginCtx, LOG_LINES_PER_CALL};
use super::engine::{LoadedComponent, PluginEngine};
use super::error::{CallError, LoadError};
use super::stats::CallStats;
use crate::contract::PluginKind;

/// A plugin world as the host calls it: implemented for the two generated
/// export types (`NormalizerExports`, `HealthExports`).
pub trait World: Sized {
    /// The kind of plugin that implements this world.
    const KIND: PluginKind;

    /// Resolves the exports in `instance`.
    fn load(
        component: &LoadedComponent,
        store: &mut Store<PluginCtx>,
        instance: &Instance,
    ) -> wasmtime::Result<Self>;

    /// Calls the world's `info` export.
    fn info(&self, store: &mut Store<PluginCtx>) -> wasmtime::Result<PluginInfo>;

    /// The conformance check a new version passes, on a throwaway
    /// instance, before it may go live; one line per problem.
    fn conformance(probe: &mut Plugin<Self>) -> Result<(), Vec<String>>;

    /// Prepares a fresh instance for its first live call, so that the hot
    /// path does not pay for first-touch set-up. Nothing by default.
    fn warm_up(_live: &mut Plugin<Self>) {}

    /// What a swap carries from `old` to `new`, on the plugin's thread
    /// between two calls: `None` for a world without state; otherwise
    /// whether `new` took `old`'s state over (`Err`: why it starts fresh).
    fn hand_over(_old: &mut Plugin<Self>, _new: &mut Plugin<Self>) -> Option<Result<(), String>> {
        None
    }
}

/// When the call in progress started: written by the plugin's thread around
/// every call, read by its watchdog ([`super::runner`]), which may mark the
/// call abandoned. Exactly one of the two wins for each call.
#[derive(Debug, Default)]
pub struct CallClock {
    /// 0: idle; [`ABANDONED`]: given up; else 1 + ms since [`clock_base`].
    started: AtomicU64,
}

const IDLE: u64 = 0;
const ABANDONED: u64 = u64::MAX;

fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl CallClock {
    /// Marks a call that started at `start` as started; returns its stamp.
    /// (`start` is the caller's own clock read: one read per call fewer,
    /// a few percent of a small call.)
    fn begin(&self, start: Instant) -> u64 {
        let stamp = 1 + start.saturating_duration_since(clock_base()).as_millis() as u64;
        // An abandoned clock stays abandoned.
        let _ = self
            .started
            .compare_exchange(IDLE, stamp, Ordering::AcqRel, Ordering::Acquire);
        stamp
    }

    /// Marks the call of `stamp` as ended; `false` if it was abandoned.
    fn end(&self, stamp: u64) -> bool {
        self.started
            .compare_exchange(stamp, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The running call's stamp and how long it has run, if one runs.
    pub fn running(&self) -> Option<(u64, Duration)> {
        let stamp = self.started.load(Ordering::Acquire);
        if stamp == IDLE || stamp == ABANDONED {
            return None;
        }
        let now = clock_base().elapsed().as_millis() as u64 + 1;
        Some((stamp, Duration::from_millis(now.saturating_sub(stamp))))
    }

    /// Gives up on the call of `stamp`, unless it has just ended.
    pub fn abandon(&self, stamp: u64) -> bool {
        self.started
            .compare_exchange(stamp, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether a call on this clock was given up.
    pub fn is_abandoned(&self) -> bool {
        self.started.load(Ordering::Acquire) == ABANDONED
    }
}

/// A live, long-lived instance of a component of world `W`: create it once
/// and call it per frame or batch. See [`super::NormalizerPlugin`] and
/// [`super::HealthPlugin`].
pub struct Plugin<W> {
    engine: PluginEngine,
    component: Arc<LoadedComponent>,
    store: Store<PluginCtx>,
    exports: W,
    info: PluginInfo,
    label: String,
    restarts: u64,
    stats: Arc<CallStats>,
    clock: Arc<CallClock>,
}

impl<W: World> Plugin<W> {
    /// Instantiates a loaded component of this world's kind and reads its
    /// name and version.
    pub fn new(engine: &PluginEngine, component: Arc<LoadedComponent>) -> Result<Self, LoadError> {
        if component.kind != W::KIND {
            return Err(LoadError::WrongKind {
                expected: W::KIND.as_str(),
                found: component.kind.as_str(),
                export: component.kind.export_interface().to_string(),
            });
        }
        let provisional = format!("{} plugin", component.kind);
        let (store, exports) = instantiate::<W>(engine, &component, provisional.clone())
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let mut live = Plugin {
            engine: engine.clone(),
            component,
            store,
            exports,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
            },
            label: provisional,
            restarts: 0,
            stats: Arc::new(CallStats::default()),
            clock: Arc::default(),
        };
        let info = live
            .call(|exports, store| exports.info(store))
            .map_err(LoadError::Info)?;
        live.label = format!("{}@{}", info.name, info.version);
        live.store.data_mut().label = live.label.clone();
        live.info = info;
        Ok(live)
    }

    /// The plugin's self-reported name and version.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// `name@version`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Call counters and latency of this instance.
    pub fn stats(&self) -> &Arc<CallStats> {
        &self.stats
    }

    /// The component this instance runs.
    pub(super) fn exports(&self) -> &W {
        &self.exports
    }

    /// The component this instance runs.
    pub fn component(&self) -> &Arc<LoadedComponent> {
        &self.component
    }

    /// The engine this instance runs on.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// Counts this instance's calls into `stats` (a replacement continues
    /// the counters of the instance it replaces).
    pub fn share_stats(&mut self, stats: Arc<CallStats>) {
        self.stats = stats;
    }

    /// Makes calls report on `clock` (the runner's watchdog reads it).
    pub fn set_clock(&mut self, clock: Arc<CallClock>) {
        self.clock = clock;
    }

    /// How many times the instance was replaced after a failure.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Bytes of linear memory and tables this instance holds (they never
    /// shrink, so this is also its peak; a replacement after a failure
    /// starts again from its own), counted against
    /// [`Limits::memory_bytes`](super::Limits).
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limiter.used()
    }

    /// Runs one call under the deadline. On failure the instance is
    /// replaced (a trapped instance cannot be entered again) and the error
    /// says what happened.
    pub(super) fn call<R>(
        &mut self,
        f: impl FnOnce(&W, &mut Store<PluginCtx>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.store
            .set_epoch_deadline(self.engine.limits().deadline_ticks());
        let start = Instant::now();
        let data = self.store.data_mut();
        data.logs_this_call = 0;
        data.cpu_at_deadline = None;
        // A trap quotes what this call printed, not an earlier one.
        data.stderr.clear();
        data.call_started = start;
        let stamp = self.clock.begin(start);
        let result = f(&self.exports, &mut self.store);
        let logged = self.store.data().logs_this_call;
        if logged > LOG_LINES_PER_CALL {
            self.stats
                .logs_dropped
                .fetch_add(u64::from(logged - LOG_LINES_PER_CALL), Ordering::Relaxed);
        }
        if !self.clock.end(stamp) {
            // The watchdog gave up on this call and another thread serves
            // in this one's place (it counted the failure): report, and
            // touch nothing else.
            return Err(CallError::Abandoned {
                plugin: self.label.clone(),
            });
        }
        match result {
            Ok(value) => {
                self.stats.record(start.elapsed(), false, false);
                Ok(value)
            }
            Err(err) => {
                let error = self.classify(err);
                let deadline = matches!(error, CallError::Deadline { .. });
                self.stats.record(start.elapsed(), true, deadline);
                self.replace()?;
                Err(error)
            }
        }
    }

    /// Refuses a result that is too large (counted as a failed call; the
    /// instance is fine and stays).
    pub(super) fn oversized(&self, what: String) -> CallError {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.stats.oversized.fetch_add(1, Ordering::Relaxed);
        CallError::Oversized {
            plugin: self.label.clone(),
            what,
        }
    }

    /// Refuses a result that does not hold together (counted as a failed
    /// call; the instance stays, as it would give the same answer again).
    pub(super) fn bad_result(&self, what: String) -> CallError {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        CallError::BadResult {
            plugin: self.label.clone(),
            what,
        }
    }

    fn classify(&mut self, err: wasmtime::Error) -> CallError {
        let plugin = self.label.clone();
        let limiter = &mut self.store.data_mut().limiter;
        if let Some(wanted_bytes) = limiter.exceeded.take() {
            return CallError::MemoryLimit {
                plugin,
                limit_bytes: limiter.limit,
                wanted_bytes,
            };
        }
        if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return CallError::Deadline {
                plugin,
                deadline_ms: self.engine.limits().deadline.as_millis() as u64,
            };
        }
        // A Rust guest prints its panic message to stderr before trapping;
        // it says far more than the trap code does.
        let trap = match err.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{err:#}"),
        };
        let message = match self.store.data().last_stderr_line() {
            Some(panic) => format!("{trap} ({panic})"),
            None => trap,
        };
        CallError::Trap { plugin, message }
    }

    /// Swaps in a fresh instance of the same component.
    fn replace(&mut self) -> Result<(), CallError> {
        let (store, exports) = instantiate::<W>(&self.engine, &self.component, self.label.clone())
            .map_err(|e| CallError::Reinstantiate {
                plugin: self.label.clone(),
                message: format!("{e:#}"),
            })?;
        self.store = store;
        self.exports = exports;
        self.restarts += 1;
        tracing::warn!(plugin = %self.label, restarts = self.restarts, "plugin instance replaced after a failed call");
        Ok(())
    }
}

fn instantiate<W: World>(
    engine: &PluginEngine,
    component: &LoadedComponent,
    label: String,
) -> wasmtime::Result<(Store<PluginCtx>, W)> {
    let mut store = engine.new_store(label);
    let instance = component.pre.instantiate(&mut store)?;
    let exports = W::load(component, &mut store, &instance)?;
    Ok((store, exports))
}
