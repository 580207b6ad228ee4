//! Shadow runs: a candidate plugin version runs beside the live one on a
//! copy of the same input, and a running report says how its outputs
//! differ, before anyone promotes it.
//!
//! The data flow, per plugin kind:
//!
//! ```text
//! live thread (pipeline / health loop) --serves--> live plugin --> Redis
//!        |  ShadowTap::offer: a copy of each input, never waiting;
//!        |  a full queue skips the input and counts it
//!        v
//! shadow thread (lower priority): reference instance of the live version
//!                                 + the candidate, on the same inputs
//!        |
//!        v
//! ShadowReport: inputs compared, identical / different, fields added,
//! removed, changed (with examples), status differences, errors by kind,
//! skipped inputs, latency of both
//! ```
//!
//! The shadow thread runs its own instance of the live version rather than
//! reading the live outputs: the hot path then only hands over a reference-
//! counted copy of its input, and both versions start from the same state
//! at the same moment, so a health plugin's windows and totals compare like
//! for like. The candidate runs under the same guards as any plugin
//! (deadline, memory, output bounds, the watchdog); its failures are counted
//! and never reach the live path.
//!
//! [`ShadowTap`] is the live side; [`runner`] the shadow thread;
//! [`report`] what it finds. The plugin manager starts, reports, stops and
//! promotes shadows ([`crate::manager`]).

pub mod report;
pub mod runner;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::plugins::runner::Inbox;
use crate::plugins::{HostState, Tick};

pub use report::ShadowReport;

/// One input of a live plugin, copied for the shadow.
#[derive(Debug, Clone)]
pub enum ShadowInput {
    /// A raw frame the live normalizer was given.
    Frame(Utf8Bytes),
    /// A batch the live health plugin observed at a time.
    Observe(Arc<Vec<Tick>>, i64),
    /// A report the live health plugin was asked for.
    Report(i64, HostState),
}

impl ShadowInput {
    /// Bytes this input holds, against the shadow queue's byte budget.
    pub fn bytes(&self) -> usize {
        match self {
            ShadowInput::Frame(text) => text.len(),
            ShadowInput::Observe(ticks, _) => ticks
                .iter()
                .map(|t| t.symbol.len() + std::mem::size_of::<Tick>())
                .sum(),
            ShadowInput::Report(_, host) => host.issues.iter().map(String::len).sum::<usize>() + 64,
        }
    }
}

/// The live side of a shadow: where a live thread offers a copy of each
/// input. Cheap when no shadow runs (one atomic load), and never waits: a
/// shadow that falls behind loses inputs (counted), never the live path.
#[derive(Clone, Default)]
pub struct ShadowTap {
    inner: Arc<TapInner>,
}

#[derive(Default)]
struct TapInner {
    active: AtomicBool,
    inbox: Mutex<Option<Inbox<ShadowInput>>>,
    skipped: AtomicU64,
}

impl ShadowTap {
    /// Offers a copy of one input, built only if a shadow runs.
    pub fn offer(&self, input: impl FnOnce() -> ShadowInput) {
        if !self.inner.active.load(Ordering::Relaxed) {
            return;
        }
        let Ok(inbox) = self.inner.inbox.lock() else {
            return;
        };
        let Some(inbox) = inbox.as_ref() else {
            return;
        };
        let input = input();
        let bytes = input.bytes();
        if inbox.try_send_sized(input, bytes).is_err() {
            self.inner.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether a shadow is attached.
    pub fn is_active(&self) -> bool {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Attaches a shadow's queue; inputs offered from now on go to it.
    pub fn attach(&self, inbox: Inbox<ShadowInput>) {
        if let Ok(mut slot) = self.inner.inbox.lock() {
            *slot = Some(inbox);
            self.inner.skipped.store(0, Ordering::Relaxed);
            self.inner.active.store(true, Ordering::Relaxed);
        }
    }

    /// Detaches the shadow: its queue closes and its thread ends once it
    /// has served what it holds.
    pub fn detach(&self) {
        self.inner.active.store(false, Ordering::Relaxed);
        if let Ok(mut slot) = self.inner.inbox.lock() {
            *slot = None;
        }
    }

    /// Inputs the shadow's full queue could not take since it attached.
    pub fn skipped(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::*;
    use crate::plugins::runner::{PluginThread, RunnerOptions};
    use crate::plugins::{embedded, Limits, NormalizerPlugin, PluginEngine, PluginKind};

    #[test]
    fn a_shadow_that_falls_behind_skips_and_counts_and_the_live_side_never_waits() {
        let engine = PluginEngine::new(Limits::default(), None).unwrap_or_else(|e| panic!("{e}"));
        let component = engine
            .load(PluginKind::Normalizer, embedded::NORMALIZER)
            .unwrap_or_else(|e| panic!("{e}"));
        let plugin =
            NormalizerPlugin::new(&engine, Arc::new(component)).unwrap_or_else(|e| panic!("{e}"));
        // A shadow thread stuck on its first input, with room for two more.
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let stuck = Mutex::new(stuck);
        let (_thread, inbox) = PluginThread::spawn(
            "shadow-test",
            plugin,
            2,
            RunnerOptions::default(),
            move |_, _: ShadowInput| {
                if let Ok(stuck) = stuck.lock() {
                    let _ = stuck.recv();
                }
                ControlFlow::Continue(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));

        let tap = ShadowTap::default();
        tap.offer(|| panic!("an input is copied only while a shadow is attached"));
        tap.attach(inbox);
        assert!(tap.is_active());
        for _ in 0..10 {
            tap.offer(|| ShadowInput::Frame(Utf8Bytes::from_static("[]")));
        }
        // One in the thread (or not yet), two queued: the rest skipped.
        let skipped = tap.skipped();
        assert!((7..=8).contains(&skipped), "{skipped} skipped");
        tap.detach();
        assert!(!tap.is_active());
        tap.offer(|| panic!("detached: nothing is copied"));
        drop(release);
    }
}
