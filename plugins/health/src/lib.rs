//! The TickStock **health** plugin: streaming health from the tick stream.
//!
//! This crate compiles to a WebAssembly component implementing the
//! `tickstock:plugins/health` world (see `wit/tickstock.wit`). The host feeds
//! it batches of ticks with their arrival time and asks for a report at each
//! health interval; the report's metrics become the `health` object published
//! on `PREFIX:streaming:health`. The plugin owns the metric set: a new metric
//! ships as a new plugin version, with no host change.
//!
//! Version 1.0.0 reports, over the host's window (its health interval):
//! - `active_symbols`: distinct symbols that ticked in the window (exact);
//! - `ticks_per_second`: ticks in the window / window length;
//! - `patterns_detected`, `indicators_calculated`: 0 (fields of the replaced system, kept for
//!   consumers; TickStock computes no patterns);
//! - extras: `total_ticks`, `window_ticks`, `window_seconds`,
//!   `seconds_since_last_tick` (once a tick arrived), `subscribed_symbols`,
//!   `peak_ticks_per_second`.
//!
//! The status rule is in [`state::HealthState::report`]. Time is only ever an
//! argument: the plugin reads no clock, so its tests are exact.
//!
//! ```
//! use tickstock_health::state::HealthState;
//! let mut state = HealthState::default();
//! state.observe(&["AAPL", "MSFT", "AAPL"], 1_000);
//! // 4 s after the state began: 3 ticks over the 4 s observed so far.
//! let (tps, active) = state.window(5_000, 10_000);
//! assert_eq!(active, 2);
//! assert!((tps - 0.75).abs() < 1e-9);
//! ```

pub mod state;

#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        // scaffold: use world: "health",
        world: "health-fast", // scaffold: drop
        additional_derives: [PartialEq],
        path: "../../wit",
    });

    // Only the wasm build exports the component's entry points; native
    // builds (unit tests, the host's benchmark) call the Rust functions.
    #[cfg(target_arch = "wasm32")]
    mod export {
        use super::super::Component;
        crate::bindings::export!(Component with_types_in crate::bindings);
    }
}

use bindings::tickstock::plugins::host::log;
pub use bindings::tickstock::plugins::types::{
    HealthReport, HealthStatus, HostState, LogLevel, Metric, MetricValue, PluginInfo, Tick,
};
use std::cell::RefCell;

// `tickstock plugin new` writes this crate out as a template: lines marked
// `scaffold: drop` (and blocks between `scaffold: drop-begin` and `-end`)
// are left out, and `// scaffold: use CODE` lines become CODE.

/// The plugin's name, reported through `info`.
// scaffold: use pub const NAME: &str = "{{name}}";
pub const NAME: &str = "stream-health"; // scaffold: drop
/// The plugin's version, reported through `info`: the crate version.
// scaffold: drop-begin
// (Test-only builds of this repository report their own.)
pub const VERSION: &str = if cfg!(feature = "test-next") {
    "1.1.0"
} else if cfg!(feature = "test-faults") {
    "1.0.1-faults"
} else {
    env!("CARGO_PKG_VERSION")
};

#[cfg(feature = "test-faults")]
mod test_faults;
// scaffold: drop-end
// scaffold: use pub const VERSION: &str = env!("CARGO_PKG_VERSION");

thread_local! {
    // A component instance is single-threaded; the host keeps one instance
    // per plugin alive for the whole session, so this is the plugin's memory.
    static STATE: RefCell<state::HealthState> = RefCell::new(state::HealthState::default());
}

struct Component;

impl bindings::exports::tickstock::plugins::health_metrics::Guest for Component {
    fn info() -> PluginInfo {
        PluginInfo {
            name: NAME.to_string(),
            version: VERSION.to_string(),
        }
    }

    fn observe(ticks: Vec<Tick>, now_ms: i64) {
        let symbols: Vec<&str> = ticks.iter().map(|t| t.symbol.as_str()).collect();
        #[cfg(feature = "test-faults")] // scaffold: drop
        test_faults::observe(&symbols); // scaffold: drop
        STATE.with_borrow_mut(|s| s.observe(&symbols, now_ms));
    }

    fn report(now_ms: i64, host: HostState) -> HealthReport {
        #[cfg(feature = "test-faults")] // scaffold: drop
        test_faults::at(test_faults::Call::Report); // scaffold: drop
        STATE.with_borrow_mut(|s| s.report(now_ms, &host))
    }

    fn export_state() -> Vec<u8> {
        #[cfg(feature = "test-faults")] // scaffold: drop
        test_faults::at(test_faults::Call::Export); // scaffold: drop
        STATE.with_borrow(|s| s.export())
    }

    fn import_state(bytes: Vec<u8>, previous: PluginInfo) -> Result<(), String> {
        #[cfg(feature = "test-faults")] // scaffold: drop
        test_faults::at(test_faults::Call::Import); // scaffold: drop
        match state::HealthState::import(&bytes) {
            Ok(imported) => {
                STATE.with_borrow_mut(|s| *s = imported);
                log(
                    LogLevel::Info,
                    &format!("imported state of {} {}", previous.name, previous.version),
                );
                Ok(())
            }
            Err(err) => {
                STATE.with_borrow_mut(|s| *s = state::HealthState::default());
                Err(format!(
                    "cannot read the state of {} {}: {err}; starting fresh",
                    previous.name, previous.version
                ))
            }
        }
    }
}
// scaffold: drop-begin

impl bindings::exports::tickstock::plugins::health_packed::Guest for Component {
    /// `observe` with the symbols cut out of one string (contract 1.1.0).
    fn observe_packed(
        symbols: String,
        ticks: Vec<bindings::exports::tickstock::plugins::health_packed::ObservedTick>,
        now_ms: i64,
    ) {
        let cut = split_symbols(&symbols, ticks.iter().map(|t| t.symbol_len as usize));
        #[cfg(feature = "test-faults")]
        test_faults::observe(&cut);
        STATE.with_borrow_mut(|s| s.observe(&cut, now_ms));
    }
}

/// Cuts `symbols` into consecutive pieces of the given byte lengths. A
/// length past the end or off a character boundary (a host bug) yields an
/// empty symbol rather than a trap.
pub fn split_symbols(symbols: &str, lens: impl Iterator<Item = usize>) -> Vec<&str> {
    let mut at: usize = 0;
    lens.map(|len| {
        let piece = symbols.get(at..at.saturating_add(len)).unwrap_or("");
        at = at.saturating_add(len);
        piece
    })
    .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn symbols_are_cut_by_length_and_a_bad_length_gives_an_empty_one() {
        let cut = super::split_symbols("AAPLMSFTÜX", [4, 4, 1, 3].into_iter());
        assert_eq!(cut, ["AAPL", "MSFT", "", ""]);
        assert_eq!(
            super::split_symbols("AÜX", [1, 2, 1].into_iter()),
            ["A", "Ü", "X"]
        );
        let cut = super::split_symbols("AB", [1, 5, 1].into_iter());
        assert_eq!(cut, ["A", "", ""]);
    }
}
// scaffold: drop-end
