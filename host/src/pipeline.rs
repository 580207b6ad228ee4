//! The normalization pipeline: the normalizer plugin on its own thread (a
//! [`PluginThread`]) turns each raw [`Frame`] into a batch of ticks, in
//! order.
//!
//! Frames arrive through the thread's bounded inbox (the feed's queue);
//! batches leave through a bounded channel to the publisher. When the
//! publisher is slow, this thread waits, the inbox fills, and the feed
//! waits briefly for room, then drops (and counts) frames at its end. A
//! frame on which the plugin fails becomes an [`Output::DeadLetter`] and the
//! next frame is served by a fresh instance. Swaps go through
//! [`Pipeline::swapper`] and happen between two frames.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::feed::Frame;
use crate::plugins::runner::{Inbox, PluginThread, RunnerOptions, RunnerStats, Swapper};
use crate::plugins::NormalizerExports;
use crate::plugins::{skip_reason_label, NormalizedTick, NormalizerPlugin, SkipReason};
use crate::shadow::{ShadowInput, ShadowTap};

/// The ticks of one frame.
#[derive(Debug)]
pub struct TickBatch {
    /// Ticks in frame order.
    pub ticks: Vec<NormalizedTick>,
    /// When the frame was read, Unix ms.
    pub received_ms: i64,
}

/// What the pipeline produces.
#[derive(Debug)]
pub enum Output {
    /// Ticks to publish.
    Ticks(TickBatch),
    /// A frame the normalizer failed on.
    DeadLetter {
        /// The frame, verbatim.
        frame: String,
        /// `name@version` of the plugin.
        plugin: String,
        /// The error.
        error: String,
        /// When the frame was read, Unix ms.
        received_ms: i64,
    },
}

/// Bytes the frames waiting for the normalizer may hold together (besides
/// `--queue-capacity` frames): past it the feed waits (`--queue-wait-ms`),
/// then drops, and counts, frames.
/// About 0.3 s of a full-market burst (250,000 ticks/s of ~100 bytes); a
/// larger queue only adds latency and memory under overload.
pub const FRAME_QUEUE_BYTES: u64 = 8 << 20;

/// Pipeline counters.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Frames normalized (successfully or not).
    pub frames: AtomicU64,
    /// Ticks produced.
    pub ticks: AtomicU64,
    /// Normalizer calls that failed (trap, deadline, memory): dead letters.
    pub plugin_errors: AtomicU64,
    /// Skipped events by reason: status, unknown_event, malformed, not_published.
    skipped: [AtomicU64; 4],
}

impl PipelineStats {
    fn slot(reason: SkipReason) -> usize {
        match reason {
            SkipReason::Status => 0,
            SkipReason::UnknownEvent => 1,
            SkipReason::Malformed => 2,
            SkipReason::NotPublished => 3,
        }
    }

    /// Skipped events of one reason.
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped[Self::slot(reason)].load(Ordering::Relaxed)
    }

    /// (label, count) for every skip reason.
    pub fn skipped_by_reason(&self) -> Vec<(&'static str, u64)> {
        [
            SkipReason::Status,
            SkipReason::UnknownEvent,
            SkipReason::Malformed,
            SkipReason::NotPublished,
        ]
        .into_iter()
        .map(|r| (skip_reason_label(r), self.skipped(r)))
        .collect()
    }
}

/// A running pipeline.
pub struct Pipeline {
    thread: PluginThread<NormalizerExports>,
}

impl Pipeline {
    /// Where normalizer swaps go.
    pub fn swapper(&self) -> Swapper<NormalizerExports> {
        self.thread.swapper()
    }

    /// What the thread's watchdog has done.
    pub fn runner(&self) -> &Arc<RunnerStats> {
        self.thread.stats()
    }

    /// Whether the pipeline thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Starts the pipeline thread with a frame queue of `capacity`; returns it
/// with the queue's sending end (give it to the feed). The thread ends when
/// the feed drops the queue or `out` is closed. Each frame is also offered
/// to `tap`, for a shadow run when one is attached.
pub fn spawn(
    plugin: NormalizerPlugin,
    capacity: usize,
    options: RunnerOptions,
    out: mpsc::Sender<Output>,
    stats: Arc<PipelineStats>,
    tap: ShadowTap,
) -> std::io::Result<(Pipeline, Inbox<Frame>)> {
    let (thread, frames) = PluginThread::spawn(
        "normalize",
        plugin,
        capacity,
        options,
        move |plugin, frame: Frame| {
            stats.frames.fetch_add(1, Ordering::Relaxed);
            tap.offer(|| ShadowInput::Frame(frame.text.clone()));
            let Some(output) = normalize(plugin, frame, &stats) else {
                return ControlFlow::Continue(());
            };
            // The publisher is gone: the role is stopping.
            if out.blocking_send(output).is_err() {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        },
    )?;
    Ok((Pipeline { thread }, frames))
}

fn normalize(plugin: &mut NormalizerPlugin, frame: Frame, stats: &PipelineStats) -> Option<Output> {
    match plugin.normalize_frame(&frame.text) {
        Ok(normalized) => {
            for skipped in &normalized.skipped {
                stats.skipped[PipelineStats::slot(skipped.reason)].fetch_add(1, Ordering::Relaxed);
                if skipped.reason == SkipReason::Malformed
                    || skipped.reason == SkipReason::UnknownEvent
                {
                    tracing::debug!(reason = skip_reason_label(skipped.reason), ev = ?skipped.ev, detail = %skipped.detail, "skipped event");
                }
            }
            if normalized.ticks.is_empty() {
                return None;
            }
            stats
                .ticks
                .fetch_add(normalized.ticks.len() as u64, Ordering::Relaxed);
            Some(Output::Ticks(TickBatch {
                ticks: normalized.ticks,
                received_ms: frame.received_ms,
            }))
        }
        Err(err) => {
            stats.plugin_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(plugin = %plugin.label(), error = %err, "normalizer failed on a frame; dead-lettering it");
            Some(Output::DeadLetter {
                frame: frame.text.to_string(),
                plugin: plugin.label().to_string(),
                error: err.to_string(),
                received_ms: frame.received_ms,
            })
        }
    }
}
