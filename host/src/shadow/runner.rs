//! The shadow thread: the candidate on a [`PluginThread`] of its own (so
//! the same deadline, memory and output guards and the same watchdog apply),
//! with an instance of the live version beside it. Each input goes through
//! the live version's instance, then the candidate, and the two outputs
//! are compared into the [`ShadowReport`].
//!
//! The thread runs at a lower scheduling priority (nice 10) than the live
//! threads, and its queue is bounded in items and bytes: when the shadow
//! falls behind, [`super::ShadowTap`] skips inputs and counts them.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use super::report::{Latency, ShadowReport};
use super::ShadowInput;
use crate::contract::PluginKind;
use crate::plugins::runner::{Inbox, PluginThread, RunnerEvent, RunnerOptions};
use crate::plugins::{
    CallError, CallStats, HealthPlugin, HealthReport, Normalized, NormalizerPlugin, Plugin, World,
};
use crate::plugins::{HealthExports, NormalizerExports};

/// Inputs the shadow queue holds at most.
pub const QUEUE_ITEMS: usize = 1_024;
/// Bytes the queued inputs may hold together.
pub const QUEUE_BYTES: u64 = 8 << 20;
/// The nice value of the shadow thread (0 is the live threads').
const NICE: i32 = 10;

/// A running shadow thread and the report it keeps.
pub struct ShadowThread {
    report: Arc<Mutex<ShadowReport>>,
    live_stats: Arc<CallStats>,
    candidate_stats: Arc<CallStats>,
    /// Whether the thread has ended (it only ends once its queue closes,
    /// or by itself: then the shadow is over).
    finished: Box<dyn Fn() -> bool + Send + Sync>,
}

impl ShadowThread {
    /// The report as of now, with the latency of both sides.
    pub fn report(&self) -> Option<ShadowReport> {
        let mut report = self.report.lock().ok()?.clone();
        report.live_latency = Latency::of(&self.live_stats);
        report.candidate_latency = Latency::of(&self.candidate_stats);
        Some(report)
    }

    /// Marks the report ended, with why (the first reason stays).
    pub fn end(&self, reason: &str) {
        if let Ok(mut report) = self.report.lock() {
            report.end(reason);
        }
    }

    /// Why the shadow ended by itself (its candidate wore out the
    /// watchdog, or the thread stopped), if it did.
    pub fn ended_by_itself(&self) -> Option<String> {
        let reason = self.report.lock().ok()?.end_reason.clone();
        reason.or_else(|| (self.finished)().then(|| "the shadow thread stopped".to_string()))
    }

    /// Records inputs the tap skipped.
    pub fn set_skipped(&self, skipped: u64) {
        if let Ok(mut report) = self.report.lock() {
            report.skipped_inputs = skipped;
        }
    }
}

/// How each world's inputs are served and compared (implemented for both
/// worlds).
pub trait Shadowed: World + Send + 'static {
    /// What one call gives back.
    type Out;
    /// Serves `input` (`None`: not an input of this world).
    fn run(plugin: &mut Plugin<Self>, input: &ShadowInput) -> Option<Self::Out>;
    /// Whether this output is that of a call the watchdog gave up on.
    fn abandoned(out: &Self::Out) -> bool;
    /// Compares the two sides' outputs into the report.
    fn compare(
        report: &mut ShadowReport,
        input: &ShadowInput,
        live: Self::Out,
        candidate: Self::Out,
    );
}

impl Shadowed for NormalizerExports {
    type Out = Result<Normalized, CallError>;

    fn run(plugin: &mut NormalizerPlugin, input: &ShadowInput) -> Option<Self::Out> {
        match input {
            ShadowInput::Frame(frame) => Some(plugin.normalize_frame(frame)),
            _ => None,
        }
    }

    fn abandoned(out: &Self::Out) -> bool {
        matches!(out, Err(CallError::Abandoned { .. }))
    }

    fn compare(
        report: &mut ShadowReport,
        input: &ShadowInput,
        live: Self::Out,
        candidate: Self::Out,
    ) {
        if let ShadowInput::Frame(frame) = input {
            report.frame(frame, &live, &candidate);
        }
    }
}

/// What one health call gives back.
pub enum HealthOut {
    /// An `observe`.
    Observed(Result<(), CallError>),
    /// A `report`.
    Report(Result<HealthReport, CallError>),
}

impl Shadowed for HealthExports {
    type Out = HealthOut;

    fn run(plugin: &mut HealthPlugin, input: &ShadowInput) -> Option<HealthOut> {
        match input {
            ShadowInput::Observe(ticks, now) => {
                Some(HealthOut::Observed(plugin.observe(ticks, *now)))
            }
            ShadowInput::Report(now, host) => Some(HealthOut::Report(plugin.report(*now, host))),
            ShadowInput::Frame(_) => None,
        }
    }

    fn abandoned(out: &HealthOut) -> bool {
        matches!(
            out,
            HealthOut::Observed(Err(CallError::Abandoned { .. }))
                | HealthOut::Report(Err(CallError::Abandoned { .. }))
        )
    }

    fn compare(
        report: &mut ShadowReport,
        input: &ShadowInput,
        live: HealthOut,
        candidate: HealthOut,
    ) {
        match (input, live, candidate) {
            (ShadowInput::Observe(ticks, _), HealthOut::Observed(l), HealthOut::Observed(c)) => {
                report.observed(ticks.len(), &l, &c)
            }
            (ShadowInput::Report(now, _), HealthOut::Report(l), HealthOut::Report(c)) => {
                report.report(*now, &l, &c)
            }
            _ => {}
        }
    }
}

/// Starts the shadow thread of a candidate of world `W`, beside `live` (an
/// instance of the live version); returns it with the queue to attach to
/// the live side's tap.
pub fn spawn<W: Shadowed>(
    live: Plugin<W>,
    candidate: Plugin<W>,
    report: ShadowReport,
    options: RunnerOptions,
) -> std::io::Result<(ShadowThread, Inbox<ShadowInput>)> {
    let report = Arc::new(Mutex::new(report));
    let (live_stats, candidate_stats) = (live.stats().clone(), candidate.stats().clone());
    // The live version's instance is only ever used by the shadow thread
    // (a replacement thread, after the watchdog gave up on one, takes it
    // over); the lock is never held across the candidate's call.
    let live = Arc::new(Mutex::new(live));
    let shared = report.clone();
    // The watchdog's findings go into the report: a candidate call that
    // never came back counts as an error, and a candidate that wore out
    // the watchdog (too many stuck threads) ends the shadow, never the host.
    let told = report.clone();
    let on_event = move |event: RunnerEvent| {
        let Ok(mut report) = told.lock() else { return };
        match event {
            RunnerEvent::Abandoned {
                plugin, stuck_for, ..
            } => report.abandoned(&plugin, stuck_for),
            RunnerEvent::Fatal { reason, .. } => {
                report.end(&format!("the candidate stopped: {reason}"))
            }
        }
    };
    let options = RunnerOptions {
        queue_bytes: Some(QUEUE_BYTES),
        on_event: Some(Arc::new(on_event)),
        ..options
    };
    let name = match W::KIND {
        PluginKind::Normalizer => "shadow-normalize",
        PluginKind::Health => "shadow-health",
    };
    let (thread, inbox) = PluginThread::spawn(
        name,
        candidate,
        QUEUE_ITEMS,
        options,
        move |candidate, input: ShadowInput| {
            lower_priority();
            // Each lock is held for one step only: a candidate call the
            // watchdog gives up on holds neither.
            let Some(want) = live
                .lock()
                .ok()
                .and_then(|mut live| W::run(&mut live, &input))
            else {
                return ControlFlow::Continue(());
            };
            let Some(got) = W::run(candidate, &input) else {
                return ControlFlow::Continue(());
            };
            // A call the watchdog gave up on was counted when it did.
            if W::abandoned(&got) {
                return ControlFlow::Continue(());
            }
            match shared.lock() {
                Ok(mut report) => W::compare(&mut report, &input, want, got),
                Err(_) => return ControlFlow::Break(()),
            }
            ControlFlow::Continue(())
        },
    )?;
    Ok((
        ShadowThread {
            report,
            live_stats,
            candidate_stats,
            finished: Box::new(move || thread.is_finished()),
        },
        inbox,
    ))
}

thread_local! {
    static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lowers the calling thread's priority, once per thread. On Linux the
/// nice value belongs to the thread, so only the shadow thread is affected.
fn lower_priority() {
    LOWERED.with(|done| {
        if !done.replace(true) {
            if let Err(err) = rustix::process::setpriority_process(None, NICE) {
                tracing::debug!(error = %err, "could not lower the shadow thread's priority");
            }
        }
    });
}
