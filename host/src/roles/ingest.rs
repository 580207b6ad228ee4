//! The ingest role: Massive feed -> normalizer component -> one message per
//! tick on `PREFIX:market:ticks`, in order; frames the normalizer fails on
//! go to `PREFIX:deadletter`; the feed's state goes to `PREFIX:feed`.
//!
//! Without an API key it starts the simulator in-process on a free loopback
//! port and connects the real client to it over a real WebSocket.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{RoleContext, RunningPlugin};
use crate::bus::Bus;
use crate::config::{Config, Symbols};
use crate::events::{health_time, DeadLetter, FeedStatus};
use crate::feed::{FeedClient, FeedError, FeedStats};
use crate::pipeline::{self, Output, Pipeline, PipelineStats, FRAME_QUEUE_BYTES};
use crate::plugins::runner::RunnerOptions;
use crate::plugins::{NormalizerPlugin, PluginKind};
use crate::secret::Secret;
use crate::shadow::ShadowTap;
use crate::simulator::{Simulator, SimulatorConfig};
use crate::universe::{Universe, DEFAULT_UNIVERSE};

/// Batches between the normalizer thread and the publisher.
const OUTPUT_QUEUE: usize = 32;
/// How long the built-in simulator gets to end its connections.
const SIMULATOR_STOP: Duration = Duration::from_secs(2);
/// Bytes of a frame kept in a dead letter.
const DEAD_LETTER_FRAME_BYTES: usize = 64 << 10;
/// How often the feed's state is published even when unchanged.
const FEED_STATUS_EVERY: Duration = Duration::from_secs(5);

/// A running ingest role.
pub struct Ingest {
    /// Feed counters.
    pub feed: Arc<FeedStats>,
    /// Normalizer counters.
    pub pipeline: Arc<PipelineStats>,
    /// The normalizer, for the plugin manager.
    pub plugin: RunningPlugin,
    /// The normalizer's thread.
    pub pipeline_thread: Pipeline,
    /// The embedded simulator, when no API key was given.
    pub simulator: Option<Simulator>,
    task: tokio::task::JoinHandle<Result<(), FeedError>>,
    publisher: tokio::task::JoinHandle<()>,
}

impl Ingest {
    /// Starts the feed, the normalizer thread and the publisher; the feed
    /// counts into `feed`.
    pub async fn start(
        config: &Config,
        ctx: &RoleContext,
        feed: Arc<FeedStats>,
    ) -> anyhow::Result<Ingest> {
        let (bus, cancel) = (&ctx.bus, ctx.cancel.clone());
        let (normalizer, component): (NormalizerPlugin, _) =
            super::start_plugin(config, ctx).await?;

        let (url, key, simulator) = feed_source(config).await?;

        let stats = Arc::new(PipelineStats::default());
        let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
        let runner = RunnerOptions {
            queue_bytes: Some(FRAME_QUEUE_BYTES),
            ..ctx.runner_options(PluginKind::Normalizer)
        };
        let tap = ShadowTap::default();
        let (pipeline_thread, frames) = pipeline::spawn(
            normalizer,
            config.queue_capacity,
            runner,
            out_tx,
            stats.clone(),
            tap.clone(),
        )
        .context("starting the normalizer thread")?;
        let publisher = tokio::spawn(publish(out_rx, bus.clone()));
        tokio::spawn(report_feed(
            bus.clone(),
            feed.clone(),
            stats.clone(),
            cancel.clone(),
        ));

        let client = FeedClient::new(url, key, config.subscription.topics(), frames, feed.clone())
            .with_max_frame_bytes(config.max_frame_bytes)
            .with_queue_wait(config.queue_wait);
        let task = tokio::spawn(client.run(cancel));
        let plugin = RunningPlugin {
            slot: Arc::new(pipeline_thread.swapper()),
            tap,
            component,
            source: super::plugin_source(&config.plugins, PluginKind::Normalizer),
        };
        Ok(Ingest {
            plugin,
            pipeline_thread,
            feed,
            pipeline: stats,
            simulator,
            task,
            publisher,
        })
    }

    /// Ends the task that publishes the normalizer's output, as a panic
    /// would, so tests can check that the host stops with an error then.
    #[doc(hidden)]
    pub fn kill_publisher(&self) {
        self.publisher.abort();
    }

    /// Waits for the feed to stop (after cancellation, or an error: the
    /// key refused, the pipeline gone), then drains (see [`Ingest::drain`])
    /// for at most `budget` from then. `Err` says why the feed stopped by
    /// itself.
    pub async fn wait(self, budget: Duration) -> anyhow::Result<()> {
        let (stopped, draining) = self.feed_stopped().await;
        draining.drain(tokio::time::Instant::now() + budget).await;
        stopped
    }

    /// Waits until the feed stopped; returns why, and what is left to drain.
    pub async fn feed_stopped(mut self) -> (anyhow::Result<()>, Draining) {
        let result = match (&mut self.task).await {
            Ok(result) => result.map_err(anyhow::Error::from),
            Err(err) => Err(anyhow::Error::from(err).context("feed task")),
        };
        let draining = Draining {
            publisher: self.publisher,
            simulator: self.simulator,
            pipeline: self.pipeline,
            feed: self.feed,
        };
        (result, draining)
    }
}

/// An ingest role whose feed stopped: the pipeline thread serves the frames
/// still queued and ends, then the publisher publishes the rest.
pub struct Draining {
    publisher: tokio::task::JoinHandle<()>,
    simulator: Option<Simulator>,
    pipeline: Arc<PipelineStats>,
    feed: Arc<FeedStats>,
}

impl Draining {
    /// Waits, until `deadline` at most, for every tick to reach the bus.
    pub async fn drain(mut self, deadline: tokio::time::Instant) {
        match tokio::time::timeout_at(deadline, &mut self.publisher).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "the publisher task failed"),
            Err(_) => {
                // Nothing is published after the final counts are logged.
                self.publisher.abort();
                tracing::warn!(
                    frames_normalized = self
                        .pipeline
                        .frames
                        .load(std::sync::atomic::Ordering::Relaxed),
                    frames_received = self
                        .feed
                        .frames_received
                        .load(std::sync::atomic::Ordering::Relaxed),
                    "shutdown: the pipeline did not drain in time; the rest is not published"
                );
            }
        }
        if let Some(sim) = self.simulator {
            if tokio::time::timeout(SIMULATOR_STOP, sim.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("shutdown: the built-in simulator did not stop in time");
            }
        }
    }
}

/// Where the feed connects: Massive with the configured key, or, without
/// one, the built-in simulator on a free loopback port (with a random key,
/// over a real WebSocket).
async fn feed_source(config: &Config) -> anyhow::Result<(String, Secret, Option<Simulator>)> {
    if let Some(key) = &config.api_key {
        return Ok((config.massive_url.clone(), key.clone(), None));
    }
    let key = uuid::Uuid::new_v4().to_string();
    let universe = match &config.subscription.symbols {
        Symbols::List(list) => list.clone(),
        Symbols::All => Universe::named(DEFAULT_UNIVERSE)?.symbols,
    };
    let settings = SimulatorConfig {
        key: Some(key.clone()),
        rate: 300.0,
        batch: 10,
        seed: rand::random(),
        universe,
        ..Default::default()
    };
    let sim = Simulator::start("127.0.0.1:0", settings).await?;
    tracing::info!(url = %sim.url(), "MASSIVE_API_KEY is not set: using the built-in Massive simulator");
    Ok((sim.url(), Secret::new(key), Some(sim)))
}

/// Publishes the pipeline's output, in order.
async fn publish(mut rx: mpsc::Receiver<Output>, bus: Bus) {
    let ticks = bus.ticks_channel().clone();
    let deadletter: Arc<str> = bus.channels().deadletter().into();
    while let Some(out) = rx.recv().await {
        match out {
            Output::Ticks(batch) => {
                for tick in batch.ticks {
                    bus.publish(&ticks, tick.payload);
                }
            }
            Output::DeadLetter {
                frame,
                plugin,
                error,
                received_ms,
            } => {
                let frame_bytes = frame.len();
                let letter = DeadLetter {
                    plugin,
                    error,
                    frame: truncated(frame, DEAD_LETTER_FRAME_BYTES),
                    frame_bytes,
                    received_ms,
                    timestamp: health_time(chrono::Utc::now()),
                };
                bus.publish_event(&deadletter, &letter);
            }
        }
    }
}

/// `text`, cut to at most `max` bytes (on a character boundary).
fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Publishes the feed's state on change and every few seconds.
async fn report_feed(
    bus: Bus,
    feed: Arc<FeedStats>,
    pipeline: Arc<PipelineStats>,
    cancel: CancellationToken,
) {
    let channel: Arc<str> = bus.channels().feed().into();
    let mut last = None;
    let mut last_sent = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let state = (feed.state(), feed.issue());
        if last.as_ref() == Some(&state) && last_sent.elapsed() < FEED_STATUS_EVERY {
            continue;
        }
        let changed = last.as_ref() != Some(&state);
        bus.publish_event(&channel, &feed_status(&feed, &pipeline, changed));
        last = Some(state);
        last_sent = tokio::time::Instant::now();
    }
    bus.publish_event(&channel, &feed_status(&feed, &pipeline, true));
}

/// The `feed_status` event.
pub fn feed_status(feed: &FeedStats, pipeline: &PipelineStats, changed: bool) -> FeedStatus {
    use std::sync::atomic::Ordering::Relaxed;
    FeedStatus {
        state: feed.state(),
        connected: feed.is_streaming(),
        changed,
        issue: feed.issue(),
        connect_attempts: feed.connect_attempts.load(Relaxed),
        reconnects: feed.reconnects.load(Relaxed),
        frames_received: feed.frames_received.load(Relaxed),
        frames_dropped: feed.frames_dropped_queue_full.load(Relaxed),
        ticks_normalized: pipeline.ticks.load(Relaxed),
        normalizer_errors: pipeline.plugin_errors.load(Relaxed),
        skipped: pipeline
            .skipped_by_reason()
            .into_iter()
            .map(|(reason, n)| (reason.to_string(), n))
            .collect(),
        max_connections: feed.max_connections.load(Relaxed),
        slow_consumer: feed.slow_consumer.load(Relaxed),
        force_disconnect: feed.force_disconnect.load(Relaxed),
        timestamp: health_time(chrono::Utc::now()),
    }
}
