//! One live plugin instance ([`Plugin`]): a store, its instance, and the
//! call discipline every plugin call goes through (deadline armed, errors
//! classified, a broken instance replaced by a fresh one). The world's own
//! calls are in `normalizer.rs` and `health.rs`.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Instance;
use wasmtime::{Store, Trap};

use super::bindings::PluginInfo;
use super::ctx::PluginCtx;
use super::engine::{LoadedComponent, PluginEngine};
use super::error::{CallError, LoadError};
use super::stats::CallStats;
use crate::contract::PluginKind;

/// A plugin world as the host calls it: implemented for the two generated
/// export types (`normalize::Guest`, `health_metrics::Guest`).
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
        let (store, exports) = instantiate::<W>(engine, &component, provisional)
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
            label: String::new(),
            restarts: 0,
            stats: Arc::new(CallStats::default()),
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
    pub fn component(&self) -> &Arc<LoadedComponent> {
        &self.component
    }

    /// How many times the instance was replaced after a failure.
    pub fn restarts(&self) -> u64 {
        self.restarts
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
        self.store.data_mut().logs_this_call = 0;
        self.store.data_mut().cpu_checkpoint = None;
        let start = Instant::now();
        match f(&self.exports, &mut self.store) {
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
