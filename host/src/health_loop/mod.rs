//! The health loop: ticks from `PREFIX:market:ticks` go to the health
//! plugin, and exactly one `streaming_health` event per interval comes out.
//!
//! Three parts, one file each:
//! - the health plugin on its own [`PluginThread`] (here): it takes
//!   [`HealthJob`]s in order, so a report covers every batch observed
//!   before it;
//! - [`consume`]: reads tick messages in batches and hands them over (and
//!   the ingest role's `PREFIX:feed` events, into a [`FeedView`]);
//! - [`reporter`]: once per interval, asks the plugin for a report, adds
//!   the host's own state (feed, bus, drops) and publishes the event.
//!
//! The process role ([`crate::roles::process`]) wraps this loop in a
//! session.

mod consume;
mod feed_view;
mod reporter;

use std::ops::ControlFlow;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use feed_view::FeedView;

use crate::bus::Bus;
use crate::events::StartedSession;
use crate::plugins::runner::{PluginThread, RunnerOptions, Swapper};
use crate::plugins::HealthExports;

/// How long the reporter waits for a report: three intervals, at least
/// [`REPORT_TIMEOUT_MIN`].
fn report_timeout(interval: Duration) -> Duration {
    (interval * 3).max(REPORT_TIMEOUT_MIN)
}
use crate::plugins::{CallError, HealthPlugin, HealthReport, HostState, PluginRegistry, Tick};
use crate::shadow::{ShadowInput, ShadowTap};

/// Ticks handed to the health thread per batch, at most.
const MAX_BATCH: usize = 2_048;
/// Batches queued for the health thread.
const INBOX: usize = 256;
/// How long the reporter waits for the plugin's report, at least: the
/// report queues behind the batches already waiting (a stuck call is the
/// watchdog's business and ends far sooner).
const REPORT_TIMEOUT_MIN: Duration = Duration::from_secs(10);

/// Health loop counters.
#[derive(Debug, Default)]
pub struct ProcessStats {
    /// Ticks handed to the health component.
    pub ticks_processed: AtomicU64,
    /// Tick messages that were not a valid `market_tick`.
    pub invalid_ticks: AtomicU64,
    /// `PREFIX:feed` messages that were not a readable `feed_status`.
    pub invalid_feed_events: AtomicU64,
    /// Health events published.
    pub health_events: AtomicU64,
    /// Failed health plugin calls.
    pub plugin_errors: AtomicU64,
}

/// Work for the health thread.
pub enum HealthJob {
    /// A batch of ticks that arrived at the given time (Unix ms).
    Observe(Arc<Vec<Tick>>, i64),
    /// A report as of the given time, with the host's state.
    Report(
        i64,
        HostState,
        oneshot::Sender<Result<HealthReport, CallError>>,
    ),
}

/// What the health loop needs to know besides the bus.
pub struct Settings {
    /// Time between health events.
    pub interval: Duration,
    /// Symbols subscribed (0 for the whole market).
    pub subscribed: u32,
    /// The session the events belong to, re-announced in each of them so
    /// that a consumer that starts late learns it within one interval.
    pub session: StartedSession,
    /// How the health thread's watchdog reports.
    pub runner: RunnerOptions,
    /// Incidents (abandoned plugin threads) to report as issues.
    pub registry: Arc<PluginRegistry>,
    /// Where every batch and report is offered to a shadow run.
    pub tap: ShadowTap,
}

/// A running health loop.
pub struct HealthLoop {
    /// Counters.
    pub stats: Arc<ProcessStats>,
    thread: PluginThread<HealthExports>,
    consumer: tokio::task::JoinHandle<()>,
    reporter: tokio::task::JoinHandle<()>,
}

impl HealthLoop {
    /// Starts the health thread, the tick consumer and the reporter. Both
    /// stop on `cancel` (the consumer after handing over what had already
    /// arrived), after which [`HealthLoop::stopped`] returns.
    pub fn start(
        plugin: HealthPlugin,
        bus: &Bus,
        feed: FeedView,
        settings: Settings,
        cancel: CancellationToken,
    ) -> anyhow::Result<HealthLoop> {
        let stats = Arc::new(ProcessStats::default());
        let thread_stats = stats.clone();
        let options = settings.runner.clone();
        let tap = settings.tap.clone();
        let (thread, inbox) =
            PluginThread::spawn("health", plugin, INBOX, options, move |plugin, job| {
                serve(plugin, job, &thread_stats, &tap);
                ControlFlow::Continue(())
            })
            .context("starting the health thread")?;
        let feed = Arc::new(feed);
        let consumer = consume::start(
            bus,
            inbox.clone(),
            stats.clone(),
            feed.clone(),
            cancel.clone(),
        );
        let reporter = reporter::Reporter::new(bus.clone(), inbox, stats.clone(), feed, settings);
        let reporter = tokio::spawn(async move { reporter.run(&cancel).await });
        Ok(HealthLoop {
            stats,
            thread,
            consumer,
            reporter,
        })
    }

    /// Where health plugin swaps go.
    pub fn swapper(&self) -> Swapper<HealthExports> {
        self.thread.swapper()
    }

    /// Waits until the consumer (which hands over the ticks that had
    /// arrived) and the reporter stopped, after cancellation.
    pub async fn stopped(self) {
        let _ = self.consumer.await;
        let _ = self.reporter.await;
    }
}

/// One job on the health thread.
fn serve(plugin: &mut HealthPlugin, job: HealthJob, stats: &ProcessStats, tap: &ShadowTap) {
    match job {
        HealthJob::Observe(ticks, now) => {
            tap.offer(|| ShadowInput::Observe(ticks.clone(), now));
            if let Err(err) = plugin.observe(&ticks, now) {
                stats
                    .plugin_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(plugin = %plugin.label(), error = %err, "health plugin failed to observe a batch");
            }
        }
        HealthJob::Report(now, host, reply) => {
            tap.offer(|| ShadowInput::Report(now, host.clone()));
            let _ = reply.send(plugin.report(now, &host));
        }
    }
}
