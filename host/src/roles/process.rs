//! The process role: a streaming session around the health loop.
//! `session_started` when it starts, the [`HealthLoop`]'s one
//! `streaming_health` per interval, and `session_stopped` (flushed) when
//! it is cancelled.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{RoleContext, RunningPlugin};
use crate::bus::Bus;
use crate::config::Config;
use crate::events::{SessionStarted, SessionStopped};
use crate::feed::FeedStats;
use crate::health_loop::{FeedView, HealthLoop, ProcessStats, Settings};
use crate::plugins::{HealthPlugin, PluginKind};
use crate::shadow::ShadowTap;

/// How long `session_stopped` may take to reach the bus.
const STOP_FLUSH: Duration = Duration::from_secs(3);

/// A running process role.
pub struct Process {
    /// The session's id (UUID v4).
    pub session_id: String,
    /// Counters.
    pub stats: Arc<ProcessStats>,
    /// The health plugin, for the plugin manager.
    pub plugin: RunningPlugin,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The session's identity, for its start and stop events.
struct Session {
    id: String,
    universe: String,
    started: DateTime<Utc>,
}

impl Process {
    /// Publishes `session_started` and starts the health loop, which runs
    /// until `stop`. `feed` is the local feed's counters when the feed runs
    /// in this process.
    pub async fn start(
        config: &Config,
        ctx: &RoleContext,
        feed: Option<Arc<FeedStats>>,
        stop: CancellationToken,
    ) -> anyhow::Result<Process> {
        let bus = &ctx.bus;
        let (plugin, component): (HealthPlugin, _) = super::start_plugin(config, ctx).await?;
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            universe: config.subscription.universe.clone(),
            started: Utc::now(),
        };
        let started = SessionStarted::new(
            &session.id,
            &session.universe,
            config.subscription.symbol_count(),
            session.started,
        );
        let feed = feed.map_or_else(FeedView::remote, FeedView::Local);
        let settings = Settings {
            interval: config.health_interval,
            subscribed: config.subscription.symbol_count() as u32,
            session: started.session.clone(),
            runner: ctx.runner_options(PluginKind::Health),
            registry: ctx.registry.clone(),
            tap: ShadowTap::default(),
        };
        let tap = settings.tap.clone();
        let health = HealthLoop::start(plugin, bus, feed, settings, stop)?;
        // Only now: a session that starts is one that will also stop.
        bus.publish_event(&bus.channels().session_started(), &started);
        tracing::info!(session_id = %session.id, universe = %session.universe, "streaming session started");

        let stats = health.stats.clone();
        let plugin = RunningPlugin {
            slot: Arc::new(health.swapper()),
            tap,
            component,
            source: super::plugin_source(&config.plugins, PluginKind::Health),
        };
        let session_id = session.id.clone();
        let task = tokio::spawn(stop_session(health, bus.clone(), session));
        Ok(Process {
            session_id,
            stats,
            plugin,
            task,
        })
    }

    /// Waits until the session stopped (after cancellation) and its
    /// `session_stopped` event was flushed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("process task")?
    }
}

/// Once the health loop stops: `session_stopped` with the final count.
async fn stop_session(health: HealthLoop, bus: Bus, session: Session) -> anyhow::Result<()> {
    let stats = health.stats.clone();
    health.stopped().await;
    let stopped = SessionStopped::new(
        &session.id,
        &session.universe,
        session.started,
        Utc::now(),
        stats.ticks_processed.load(Ordering::Relaxed),
    );
    bus.publish_event(&bus.channels().session_stopped(), &stopped);
    if !bus.flush(STOP_FLUSH).await {
        tracing::warn!("could not flush every event before stopping");
    }
    tracing::info!(session_id = %session.id, "streaming session stopped");
    Ok(())
}
