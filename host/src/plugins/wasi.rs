//! The WASI 0.2 surface a plugin sees: all of it is linked (every
//! `wasm32-wasip2` Rust component imports stdio, environment, exit, clocks
//! and filesystem types, used or not, and componentize-py components import
//! most of WASI), but none of it does anything that outlives a call:
//!
//! | interface | what a plugin gets |
//! |---|---|
//! | `wasi:filesystem` | no preopened directory: no file can be opened |
//! | `wasi:sockets` | sockets can be created, every address is refused, no name lookup |
//! | `wasi:cli` | no arguments, no environment, empty stdin, stdout discarded, stderr: the last 4 KiB of each call kept (a Rust panic message is quoted in the trap error), never full |
//! | `wasi:clocks` | both clocks read zero: time reaches a plugin only as an argument |
//! | `wasi:clocks/monotonic-clock.subscribe-*` | a zero wait is ready at once; **any other wait traps** with a message that says plugins may not wait |
//! | `wasi:random` | works |
//!
//! Why a wait traps: a wait happens in host code, where the epoch deadline
//! cannot interrupt it, so `std::thread::sleep(1 hour)` in a plugin would
//! stop its thread for an hour. A no-op would hide the bug; a trap names
//! it, and the call fails like any other plugin error.

use std::future::Future;
use std::pin::Pin;

use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};
use wasmtime_wasi::WasiView;

use super::ctx::PluginCtx;

/// Links all of WASI 0.2, then replaces the monotonic clock's waits.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginCtx>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(linker, |ctx| ctx)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The message of the trap a wait turns into.
pub const WAIT_REFUSED: &str =
    "plugins may not sleep or wait (wasi:clocks/monotonic-clock.subscribe-*): \
     the wait would block the plugin's thread where its deadline cannot stop it";

/// A pollable that is ready at once.
struct Ready;

impl Pollable for Ready {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl PluginCtx {
    /// A ready pollable for a zero wait; a trap for any other.
    fn wait(&mut self, nanos: u64) -> wasmtime::Result<Resource<DynPollable>> {
        if nanos > 0 {
            return Err(wasmtime::format_err!("{WAIT_REFUSED}"));
        }
        let table = self.ctx().table;
        let ready = table.push(Ready)?;
        subscribe(table, ready)
    }
}

impl monotonic_clock::Host for PluginCtx {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(0)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1_000_000_000)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        // The clock reads zero: any later instant is a wait.
        self.wait(when)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.wait(duration)
    }
}
