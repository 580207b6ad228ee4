//! What a plugin's `Store` holds: an inert WASI context (see [`super::wasi`]),
//! the instance's resource budget ([`Budget`]), the deadline bookkeeping,
//! and the host's one granted function, `log`.

use super::stderr::StderrTail;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::bindings::{tickstock::plugins as wit, LogLevel};

/// Log lines a plugin may write per call; more are counted and dropped so a
/// chatty plugin cannot flood the host's log.
pub(super) const LOG_LINES_PER_CALL: u32 = 20;
/// Longest log message kept, in bytes.
const LOG_LINE_MAX: usize = 1_024;
/// Host-side WASI resources (streams, pollables, sockets) one instance may
/// hold at once; creating more fails in the guest.
const HOST_RESOURCES: usize = 1_024;
/// Largest `wasi:random` request, in bytes (the bytes are built on the host
/// before the guest's memory cap applies).
const RANDOM_BYTES_MAX: u64 = 1 << 20;
/// Core instances, linear memories and tables one component may create: far
/// above what a Rust or componentize-py component needs, far below
/// wasmtime's defaults (10,000 each), each of which would otherwise get
/// memory of its own.
const MAX_INSTANCES: usize = 100;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 32;

/// The per-store state of one plugin instance.
pub struct PluginCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: Budget,
    /// `name@version`, attached to every log line.
    pub(super) label: String,
    /// Log lines written during the current call.
    pub(super) logs_this_call: u32,
    /// When the current call (or instantiation) started.
    pub(super) call_started: std::time::Instant,
    /// The calling thread's CPU time when the current call first ran past
    /// its deadline (`None` until then; reset by every call).
    pub(super) cpu_at_deadline: Option<std::time::Duration>,
    /// The guest's stderr, kept in memory so a trap can quote the panic
    /// message. Never forwarded anywhere else.
    pub(super) stderr: StderrTail,
}

impl PluginCtx {
    /// A context with an empty WASI context (no preopened directories, no
    /// network, no environment, no arguments, no inherited stdio; stderr is
    /// captured into a small buffer) and a memory cap.
    pub fn new(label: String, memory_limit: usize) -> Self {
        let stderr = StderrTail::default();
        let mut table = ResourceTable::new();
        table.set_max_capacity(HOST_RESOURCES);
        PluginCtx {
            // WasiCtx::builder() starts empty: nothing is inherited. Clocks
            // are frozen at zero: time reaches a plugin only as an argument,
            // which keeps plugins deterministic and their tests exact.
            wasi: WasiCtx::builder()
                .stderr(stderr.clone())
                .wall_clock(FrozenClock)
                .monotonic_clock(FrozenClock)
                .max_random_size(RANDOM_BYTES_MAX)
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build(),
            stderr,
            table,
            limiter: Budget::new(memory_limit),
            label,
            logs_this_call: 0,
            call_started: std::time::Instant::now(),
            cpu_at_deadline: None,
        }
    }
}

impl PluginCtx {
    /// The last line the guest wrote to stderr (a Rust panic message), if
    /// any, limited to what was captured.
    pub(super) fn last_stderr_line(&self) -> Option<String> {
        let text = self.stderr.contents();
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

/// One budget per plugin instance: the bytes of all its linear memories
/// and tables together, and how many core instances, memories and tables
/// it may create. It remembers when the budget was hit, so the resulting
/// trap can be reported as a memory-limit error.
pub struct Budget {
    pub(super) limit: usize,
    /// Bytes of memories and tables now.
    used: usize,
    /// The last growth allowed, undone if wasmtime then fails it (a memory
    /// or table past its own declared maximum).
    last_growth: usize,
    pub(super) exceeded: Option<usize>,
}

impl Budget {
    fn new(limit: usize) -> Self {
        Budget {
            limit,
            used: 0,
            last_growth: 0,
            exceeded: None,
        }
    }

    /// Grows the total by `current -> desired` bytes if it stays within the
    /// limit; otherwise remembers the overrun and refuses with an error
    /// (which traps the guest: a refused `memory.grow` returning -1 would
    /// become a bare abort in a Rust guest).
    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let total = self.used.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            self.exceeded = Some(total);
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded (memories and tables would take {total})",
                self.limit
            ));
        }
        self.last_growth = total.saturating_sub(self.used);
        self.used = total;
        Ok(true)
    }

    /// Bytes of memories and tables now.
    pub(super) fn used(&self) -> usize {
        self.used
    }

    /// Undoes the last growth, which did not happen.
    fn undo_last(&mut self) {
        self.used = self.used.saturating_sub(self.last_growth);
        self.last_growth = 0;
    }
}

impl ResourceLimiter for Budget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table element is a pointer on the host.
        let element = std::mem::size_of::<usize>();
        self.grow(
            current.saturating_mul(element),
            desired.saturating_mul(element),
        )
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last();
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_every_memory_and_table_together() {
        let mut budget = Budget::new(100);
        assert!(budget.grow(0, 60).unwrap(), "a first memory of 60");
        assert!(budget.grow(0, 30).unwrap(), "a second memory of 30");
        assert!(
            budget.grow(30, 40).is_ok(),
            "the second grows by 10: 100 in all"
        );
        let err = budget.grow(0, 1).unwrap_err().to_string();
        assert!(err.contains("memory limit of 100 bytes"), "{err}");
        assert_eq!(budget.exceeded, Some(101));
        assert!(
            budget.table_growing(0, 1, None).is_err(),
            "tables share the budget"
        );
    }
}
