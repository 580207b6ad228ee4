//! The wasmtime engine every plugin runs on: configuration, limits, the
//! epoch ticker that enforces deadlines, the linker with the host's grants,
//! and loading (compile or cache, contract check, pre-instantiation).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Config, Engine, Store, UpdateDeadline};

use super::bindings::tickstock::plugins as wit;
use super::cache::{CacheOutcome, CompiledCache};
use super::compat;
use super::ctx::PluginCtx;
use super::error::LoadError;
use super::wasi;
use crate::contract::PluginKind;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Limits applied to every plugin call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a single call may run. A call past it is stopped once it has
    /// also used a deadline's worth of CPU on its thread (see [`overrun`]),
    /// and at [`Limits::hard_cap`] in any case.
    pub deadline: Duration,
    /// Bytes all linear memories and tables of one plugin instance may
    /// take together.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(50),
            memory_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// The wall-clock time after which any call is stopped, whatever its CPU
    /// use: ten deadlines.
    pub fn hard_cap(&self) -> Duration {
        self.deadline.saturating_mul(10)
    }

    /// The deadline in epoch ticks (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        (self.deadline.as_millis() as u64 / EPOCH_TICK.as_millis() as u64).max(1)
    }
}

/// A component that passed every check and is ready to instantiate.
pub struct LoadedComponent {
    /// Its kind.
    pub kind: PluginKind,
    /// The contract version it was built against (e.g. `1.0.0`).
    pub wit_version: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: usize,
    /// Whether compiling was skipped thanks to the cache.
    pub cache: CacheOutcome,
    pub(super) pre: InstancePre<PluginCtx>,
}

impl LoadedComponent {
    /// Loads an optional export (one the contract added in a minor
    /// version) with `load`: `None` when the component does not export
    /// `name` at a compatible version (a component built before it), an
    /// error when it does but `load` refuses its shape: a wrong export is
    /// refused, not silently skipped.
    pub(super) fn optional_export<G>(
        &self,
        name: &str,
        load: impl FnOnce(&InstancePre<PluginCtx>) -> wasmtime::Result<G>,
    ) -> wasmtime::Result<Option<G>> {
        if !exports_compatible(self.pre.component(), name) {
            return Ok(None);
        }
        load(&self.pre).map(Some)
    }
}

/// Whether `component` exports the interface `name` (`pkg/iface@x.y.z`) at
/// any version of the same major: wasmtime's lookup takes the exact name,
/// or else the highest `1.x` the component exports (`@1.2.0`, `@1.1.3`, and
/// also an older `@1.0.0`), never `@2.0.0` or a pre-release. bindgen's
/// typed lookup, which `load` runs next, finds the same export and checks
/// its functions' types, so a same-named export of another shape is
/// refused there.
fn exports_compatible(component: &Component, name: &str) -> bool {
    component.get_export_index(None, name).is_some()
}

/// The engine and everything shared by all plugin instances.
///
/// Cloning is cheap; the epoch ticker stops when the last clone is dropped.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    linker: Arc<Linker<PluginCtx>>,
    cache: Option<CompiledCache>,
    limits: Limits,
    /// `None` on an engine without the deadline guard.
    _ticker: Option<Arc<EpochTicker>>,
}

/// Set (to anything) to have wasmtime write a `perf` map of the JIT code.
pub const PERF_MAP_ENV: &str = "TICKSTOCK_WASM_PERF_MAP";

impl PluginEngine {
    /// Creates the engine. `cache_dir` enables the compiled-component cache.
    pub fn new(limits: Limits, cache_dir: Option<&Path>) -> anyhow::Result<Self> {
        Self::build(limits, cache_dir, true)
    }

    /// An engine whose calls are **never stopped**: its code is compiled
    /// without the epoch checks that enforce [`Limits::deadline`]. For
    /// measurement only (the e2e bench reports what the deadline guard
    /// costs against it, in the same run): no role, option or
    /// configuration builds one, and its [`Self::limits`] still name a
    /// deadline that nothing enforces.
    #[doc(hidden)]
    pub fn without_deadline_guard(limits: Limits) -> anyhow::Result<Self> {
        Self::build(limits, None, false)
    }

    fn build(limits: Limits, cache_dir: Option<&Path>, guard: bool) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Every function entry and loop header checks the epoch: this is
        // what stops a looping plugin.
        config.epoch_interruption(guard);
        // Async component support makes every call several times slower and
        // plugins have no use for it.
        config.concurrency_support(false);
        config.max_wasm_stack(1 << 20);
        // `perf` cannot name JIT code on its own: with this set, wasmtime
        // writes /tmp/perf-PID.map so that `perf report` shows the guest's
        // functions (build the guest unstripped to get its names).
        if std::env::var_os(PERF_MAP_ENV).is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .map_err(|e| e.context("configuring the wasmtime engine"))?;

        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .map_err(|e| e.context("linking the inert WASI context"))?;
        wit::host::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(&mut linker, |ctx| ctx)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .map_err(|e| e.context("linking tickstock:plugins/host"))?;

        let cache = match cache_dir {
            Some(dir) => match CompiledCache::open(dir, &engine) {
                Ok(cache) => Some(cache),
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), error = %err, "compiled-component cache disabled");
                    None
                }
            },
            None => None,
        };
        let ticker = if guard {
            let ticker = EpochTicker::start(engine.clone())
                .map_err(|e| anyhow::anyhow!(e).context("starting the epoch ticker thread"))?;
            Some(Arc::new(ticker))
        } else {
            None
        };
        Ok(PluginEngine {
            engine,
            linker: Arc::new(linker),
            cache,
            limits,
            _ticker: ticker,
        })
    }

    /// The limits applied to calls.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The underlying wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiled-component cache, if enabled.
    pub fn cache(&self) -> Option<&CompiledCache> {
        self.cache.as_ref()
    }

    /// Compiles (or loads from the cache) and checks a component of `kind`.
    /// This is CPU-heavy on a cache miss: call it off latency-critical
    /// threads.
    pub fn load(&self, kind: PluginKind, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        self.load_as(Some(kind), bytes)
    }

    /// [`Self::load`] for a component of either kind, found from its exports
    /// (compiled once).
    pub fn load_any(&self, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        self.load_as(None, bytes)
    }

    fn load_as(
        &self,
        kind: Option<PluginKind>,
        bytes: &[u8],
    ) -> Result<LoadedComponent, LoadError> {
        check_header(bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let (component, cache) = self.compile(bytes, &sha256)?;
        let (kind, wit_version) = match kind {
            Some(kind) => (kind, compat::check(&self.engine, &component, kind)?),
            None => {
                let first = PluginKind::Normalizer;
                match compat::check(&self.engine, &component, first) {
                    Ok(version) => (first, version),
                    Err(LoadError::WrongKind { .. }) => {
                        let other = PluginKind::Health;
                        (other, compat::check(&self.engine, &component, other)?)
                    }
                    Err(err) => return Err(err),
                }
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        Ok(LoadedComponent {
            kind,
            wit_version,
            sha256,
            size: bytes.len(),
            cache,
            pre,
        })
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, CacheOutcome), LoadError> {
        let Some(cache) = &self.cache else {
            let component = Component::new(&self.engine, bytes)
                .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
            return Ok((component, CacheOutcome::Disabled));
        };
        if let Some(component) = cache.load(&self.engine, sha256) {
            return Ok((component, CacheOutcome::Hit));
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        Ok((component, CacheOutcome::Miss))
    }

    /// Stores an accepted component's compiled form in the cache (if there
    /// is one and the component is not there yet). Refused components are
    /// never stored: call this only once a component is accepted.
    pub fn keep(&self, component: &LoadedComponent) {
        if let (Some(cache), CacheOutcome::Miss) = (&self.cache, component.cache) {
            cache.store(&component.sha256, component.pre.component());
        }
    }

    /// A fresh store for one instance, with limits and deadline armed.
    pub(super) fn new_store(&self, label: String) -> Store<PluginCtx> {
        let mut store = Store::new(
            &self.engine,
            PluginCtx::new(label, self.limits.memory_bytes),
        );
        store.limiter(|ctx| &mut ctx.limiter);
        let limits = self.limits;
        store.epoch_deadline_callback(move |mut ctx| Ok(overrun(ctx.data_mut(), &limits)));
        // Deadlines start at 0: arm one before instantiation runs any code.
        store.set_epoch_deadline(self.limits.deadline_ticks());
        store
    }
}

/// What to do when a call has run past its deadline in wall time (the
/// epoch fired). It is stopped once its thread has also used a deadline's
/// worth of CPU since then, so a call that was merely preempted on a busy
/// machine is not stopped while a loop is, after about two deadlines on an
/// idle machine and a few more on a starved one; and any call is stopped
/// at [`Limits::hard_cap`] of wall time, whatever the CPU clock says. Calls
/// that finish in time never read the CPU clock.
fn overrun(data: &mut PluginCtx, limits: &Limits) -> UpdateDeadline {
    if data.call_started.elapsed() >= limits.hard_cap() {
        return UpdateDeadline::Interrupt;
    }
    let Ok(now) = cpu_time::ThreadTime::try_now().map(|t| t.as_duration()) else {
        // No CPU clock: wall time decides.
        return UpdateDeadline::Interrupt;
    };
    match data.cpu_at_deadline {
        None => data.cpu_at_deadline = Some(now),
        Some(then) if now.saturating_sub(then) >= limits.deadline => {
            return UpdateDeadline::Interrupt
        }
        Some(_) => {}
    }
    // Look again at the next epoch tick.
    UpdateDeadline::Continue(1)
}

/// Rejects bytes that are not a component with a message that says what
/// they are instead.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotAComponent(format!(
            "{} bytes without the WebAssembly magic number \\0asm",
            bytes.len()
        )));
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(LoadError::NotAComponent(
            "this is a core WebAssembly module; build the plugin for wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)"
                .into(),
        )),
        _ => Err(LoadError::NotAComponent(format!(
            "unknown WebAssembly version/layer {:02x?}",
            &bytes[4..8]
        ))),
    }
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`], so calls
/// armed with a deadline of N ticks are interrupted after about N ms.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed exports are found in components built against a later
    /// 1.x contract, and only there.
    #[test]
    fn optional_exports_are_found_at_compatible_versions_only() {
        let engine = Engine::default();
        let exporting = |name: &str| {
            let text = format!(
                r#"(component
                    (core module $m (func (export "f")))
                    (core instance $i (instantiate $m))
                    (func $f (canon lift (core func $i "f")))
                    (instance $packed (export "normalize-frame-packed" (func $f)))
                    (export "{name}" (instance $packed)))"#
            );
            Component::new(&engine, wat::parse_str(text).unwrap()).unwrap()
        };
        let wanted = crate::plugins::normalizer::PACKED_EXPORT;
        for (exported, found) in [
            ("tickstock:plugins/normalize-packed@1.1.0", true),
            ("tickstock:plugins/normalize-packed@1.1.3", true),
            ("tickstock:plugins/normalize-packed@1.2.0", true),
            // (No 1.0 had it; were one exported, its types are checked next.)
            ("tickstock:plugins/normalize-packed@1.0.0", true),
            ("tickstock:plugins/normalize-packed@2.0.0", false),
            ("tickstock:plugins/normalize-packed@1.1.0-rc1", false),
            ("tickstock:plugins/normalize@1.1.0", false),
        ] {
            assert_eq!(
                exports_compatible(&exporting(exported), wanted),
                found,
                "{wanted} in a component exporting {exported}"
            );
        }
    }

    #[test]
    fn headers_are_named() {
        let core = b"\0asm\x01\0\0\0rest";
        assert!(
            matches!(check_header(core), Err(LoadError::NotAComponent(m)) if m.contains("core WebAssembly module"))
        );
        assert!(
            matches!(check_header(b"hello world"), Err(LoadError::NotAComponent(m)) if m.contains("magic"))
        );
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
