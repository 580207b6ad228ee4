//! What a plugin's `Store` holds: an empty WASI context, the memory cap, and
//! the host's one granted function, `log`.

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::bindings::{tickstock::plugins as wit, LogLevel};

/// Log lines a plugin may write per call; more are counted and dropped so a
/// chatty plugin cannot flood the host's log.
const LOG_LINES_PER_CALL: u32 = 20;
/// Longest log message kept, in bytes.
const LOG_LINE_MAX: usize = 1_024;
/// Bytes of guest stderr kept (a Rust guest's panic message lands there);
/// writes past this fail inside the guest and are lost.
const STDERR_CAPTURE: usize = 4_096;

/// The per-store state of one plugin instance.
pub struct PluginCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: MemoryCap,
    /// `name@version`, attached to every log line.
    pub(super) label: String,
    /// Log lines written during the current call.
    pub(super) logs_this_call: u32,
    /// CPU time of the calling thread at the last deadline check of the
    /// current call (`None` until the first check; reset by every call).
    pub(super) cpu_checkpoint: Option<std::time::Duration>,
    /// CPU time one call may use.
    pub(super) deadline: std::time::Duration,
    /// The guest's stderr, kept in memory so a trap can quote the panic
    /// message. Never forwarded anywhere else.
    stderr: MemoryOutputPipe,
}

impl PluginCtx {
    /// A context with an empty WASI context (no preopened directories, no
    /// network, no environment, no arguments, no inherited stdio; stderr is
    /// captured into a small buffer) and a memory cap.
    pub fn new(label: String, memory_limit: usize, deadline: std::time::Duration) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        PluginCtx {
            // WasiCtx::builder() starts empty: nothing is inherited. Clocks
            // are frozen at zero: time reaches a plugin only as an argument,
            // which keeps plugins deterministic and their tests exact.
            wasi: WasiCtx::builder()
                .stderr(stderr.clone())
                .wall_clock(FrozenClock)
                .monotonic_clock(FrozenClock)
                .build(),
            stderr,
            table: ResourceTable::new(),
            limiter: MemoryCap::new(memory_limit),
            label,
            logs_this_call: 0,
            cpu_checkpoint: None,
            deadline,
        }
    }
}

impl PluginCtx {
    /// The last line the guest wrote to stderr (a Rust panic message), if
    /// any, limited to what was captured.
    pub(super) fn last_stderr_line(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.starts_with("note:"))
            .map(|l| l.trim().to_string())
    }
}

impl WasiView for PluginCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::types::Host for PluginCtx {}

impl wit::host::Host for PluginCtx {
    fn log(&mut self, level: LogLevel, message: String) {
        self.logs_this_call += 1;
        if self.logs_this_call > LOG_LINES_PER_CALL {
            if self.logs_this_call == LOG_LINES_PER_CALL + 1 {
                tracing::warn!(plugin = %self.label, "plugin log limit reached for this call; dropping further lines");
            }
            return;
        }
        let mut message = message;
        if message.len() > LOG_LINE_MAX {
            let mut end = LOG_LINE_MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let plugin = self.label.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// Caps a plugin's linear memory and remembers when the cap was hit, so the
/// resulting trap can be reported as a memory-limit error.
pub struct MemoryCap {
    pub(super) limit: usize,
    pub(super) exceeded: Option<usize>,
}

impl MemoryCap {
    fn new(limit: usize) -> Self {
        MemoryCap {
            limit,
            exceeded: None,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = Some(desired);
            // An error here traps the guest instead of returning -1 from
            // `memory.grow`, which Rust guests turn into a bare abort.
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded (asked for {desired})",
                self.limit
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A clock that always reads zero (the Unix epoch / monotonic start).
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}
