//! Test-only faults (feature `test-faults`, never shipped): how ordinary
//! code misbehaves by accident, for the host's sandbox tests. Ticks of
//! special symbols choose what happens:
//! - `SLEEP` / `LOOP`: `observe` sleeps an hour / spins for ever;
//! - `REPORT_SLEEP`, `EXPORT_SLEEP`, `IMPORT_LOOP`: from then on, that call
//!   sleeps (or spins, for import) in this instance;
//! - feature `test-sleep-in-check`: `observe` always sleeps, so the host's
//!   conformance check meets it.

use std::cell::Cell;
use std::time::Duration;

/// The calls a fault can be armed for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Report,
    Export,
    Import,
}

thread_local! {
    static ARMED: Cell<Option<Call>> = const { Cell::new(None) };
}

fn sleep_an_hour() {
    std::thread::sleep(Duration::from_secs(3600));
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Before `observe`: acts on the special symbols.
pub fn observe(symbols: &[&str]) {
    if cfg!(feature = "test-sleep-in-check") {
        sleep_an_hour();
    }
    for symbol in symbols {
        match *symbol {
            "SLEEP" => sleep_an_hour(),
            "LOOP" => spin(),
            "REPORT_SLEEP" => ARMED.set(Some(Call::Report)),
            "EXPORT_SLEEP" => ARMED.set(Some(Call::Export)),
            "IMPORT_LOOP" => ARMED.set(Some(Call::Import)),
            _ => {}
        }
    }
}

/// Before `call`: misbehaves if armed for it (import always spins when
/// built with `test-loop-import`).
pub fn at(call: Call) {
    if call == Call::Import && cfg!(feature = "test-loop-import") {
        spin();
    }
    if ARMED.get() == Some(call) {
        match call {
            Call::Import => spin(),
            _ => sleep_an_hour(),
        }
    }
}
