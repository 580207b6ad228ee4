//! The normalization pipeline: one OS thread owns the normalizer instance
//! and turns each raw [`Frame`] into a batch of ticks, in order.
//!
//! Frames arrive through the feed's bounded queue; batches leave through a
//! bounded channel to the publisher. When the publisher is slow, this
//! thread waits, the feed's queue fills, and the feed drops (and counts)
//! frames at its end: the socket reader itself never waits. A frame on which
//! the plugin fails becomes an [`Output::DeadLetter`] and the next frame is
//! served by a fresh instance.
//!
//! Hot swap: a [`Swap`] sent on the control channel replaces the normalizer
//! between two frames. Every frame is normalized by exactly one version, in
//! arrival order; the old instance is handed back to the caller so that
//! dropping it (unmapping its memory) happens off this thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::feed::Frame;
use crate::plugins::{skip_reason_label, NormalizedTick, NormalizerPlugin, SkipReason};

/// How long the thread waits for a frame before looking for a swap.
const IDLE_POLL: Duration = Duration::from_millis(20);

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

/// A request to replace the normalizer between two frames.
pub struct Swap {
    /// The new instance (already instantiated and checked).
    pub plugin: NormalizerPlugin,
    /// Gets the old instance back, and how long the hot path paused.
    pub done: oneshot::Sender<Swapped>,
}

/// The result of a [`Swap`].
pub struct Swapped {
    /// The instance that was replaced (drop it off the hot path).
    pub old: NormalizerPlugin,
    /// Time the pipeline spent switching (between two frames).
    pub pause: Duration,
}

/// Pipeline counters.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Frames normalized (successfully or not).
    pub frames: AtomicU64,
    /// Ticks produced.
    pub ticks: AtomicU64,
    /// Normalizer calls that failed (trap, deadline, memory): dead letters.
    pub plugin_errors: AtomicU64,
    /// Swaps performed.
    pub swaps: AtomicU64,
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

/// The channels of a pipeline: where the feed sends frames, where swaps go.
pub struct PipelineInput {
    /// Give this to the feed client.
    pub frames: std_mpsc::SyncSender<Frame>,
    /// Send [`Swap`]s here.
    pub control: std_mpsc::Sender<Swap>,
}

/// Starts the pipeline thread with a frame queue of `capacity`. It ends
/// when the feed drops its sender or `out` is closed.
pub fn spawn(
    plugin: NormalizerPlugin,
    capacity: usize,
    out: mpsc::Sender<Output>,
    stats: Arc<PipelineStats>,
) -> std::io::Result<PipelineInput> {
    let (frame_tx, frame_rx) = std_mpsc::sync_channel(capacity.max(1));
    let (control_tx, control_rx) = std_mpsc::channel();
    std::thread::Builder::new()
        .name("normalize".into())
        .spawn(move || run(plugin, frame_rx, control_rx, out, stats))?;
    Ok(PipelineInput {
        frames: frame_tx,
        control: control_tx,
    })
}

fn run(
    mut plugin: NormalizerPlugin,
    frames: std_mpsc::Receiver<Frame>,
    control: std_mpsc::Receiver<Swap>,
    out: mpsc::Sender<Output>,
    stats: Arc<PipelineStats>,
) {
    loop {
        // Swaps happen here, between two frames.
        while let Ok(swap) = control.try_recv() {
            let start = Instant::now();
            let old = std::mem::replace(&mut plugin, swap.plugin);
            let pause = start.elapsed();
            stats.swaps.fetch_add(1, Ordering::Relaxed);
            tracing::info!(from = %old.label(), to = %plugin.label(), pause_ns = pause.as_nanos() as u64, "normalizer swapped");
            let _ = swap.done.send(Swapped { old, pause });
        }
        let frame = match frames.recv_timeout(IDLE_POLL) {
            Ok(frame) => frame,
            Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        };
        stats.frames.fetch_add(1, Ordering::Relaxed);
        let Some(output) = normalize(&mut plugin, frame, &stats) else {
            continue;
        };
        if out.blocking_send(output).is_err() {
            break;
        }
    }
    tracing::debug!("normalization pipeline stopped");
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
