//! Entry points of the roles as the CLI runs them, and [`Host`], all three
//! roles in one process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::ingest::Ingest;
use super::process::Process;
use super::RoleContext;
use crate::bus::{Bus, BusStats};
use crate::config::Config;
use crate::feed::FeedStats;
use crate::fleet::Fleet;
use crate::manager::PluginManager;
use crate::pipeline::PipelineStats;
use crate::plugins::PluginRegistry;
use crate::web::admin::Admin;
use crate::web::state::{follow, DashboardState};
use crate::web::{self, AppState};

/// How long a stopping role waits for its last events to reach the bus.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// All three roles in one process (`tickstock run`).
pub struct Host {
    /// The bus the roles share.
    pub bus: Bus,
    /// The dashboard server's address.
    pub addr: SocketAddr,
    /// The dashboard's state.
    pub dashboard: Arc<DashboardState>,
    /// The feed's counters.
    pub feed: Arc<FeedStats>,
    /// The active plugins.
    pub registry: Arc<PluginRegistry>,
    /// What the HTTP handlers see.
    pub web: AppState,
    /// Installs and rolls back plugins.
    pub manager: Arc<PluginManager>,
    /// This instance's part in the fleet (with Redis).
    pub fleet: Option<Fleet>,
    /// The ingest role.
    pub ingest: Ingest,
    /// The process role.
    pub process: Process,
    server: tokio::task::JoinHandle<()>,
    ctx: RoleContext,
    process_stop: CancellationToken,
    shutdown_timeout: std::time::Duration,
}

impl Host {
    /// Starts the process role, then the feed (so the process role hears
    /// the first tick), then the dashboard server. Everything stops on
    /// `cancel`.
    pub async fn start(config: &Config, cancel: CancellationToken) -> anyhow::Result<Host> {
        let ctx = RoleContext::new(config, cancel.clone())?;
        let dashboard = DashboardState::new(config.health_interval);
        follow(&ctx.bus, dashboard.clone(), cancel.clone());
        let feed = Arc::new(FeedStats::default());
        // The process role stops after the ingest role drained (see `wait`).
        let process_stop = CancellationToken::new();
        let process =
            Process::start(config, &ctx, Some(feed.clone()), process_stop.clone()).await?;
        let ingest = Ingest::start(config, &ctx, feed.clone()).await?;
        let running = vec![ingest.plugin.clone(), process.plugin.clone()];
        let manager = ctx.start_manager(config, running);
        let fleet = ctx.join_fleet(config, &manager, "run")?;
        let state = AppState {
            admin: admin(config, &manager, fleet.as_ref()),
            fleet: fleet.as_ref().map(|f| f.roster.clone()),
            feed: Some(feed.clone()),
            pipeline: Some(ingest.pipeline.clone()),
            process: Some(process.stats.clone()),
            registry: ctx.registry.clone(),
            ws_limits: config.ws.clone(),
            ..AppState::dashboard_only(dashboard.clone(), ctx.bus.clone(), cancel.clone())
        };
        let (addr, server) =
            web::serve(config.listen, web::router(state.clone()), cancel.clone()).await?;
        Ok(Host {
            manager,
            fleet,
            web: state,
            bus: ctx.bus.clone(),
            addr,
            dashboard,
            feed,
            registry: ctx.registry.clone(),
            ingest,
            process,
            server,
            ctx,
            process_stop,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// Waits until the host stops (after `cancel`, when the feed fails for
    /// good, or when a plugin runner cannot go on), in order: the feed
    /// stops; the frames it queued are normalized and every tick is
    /// published or counted dropped; the process role takes the ticks that
    /// reached it; then `session_stopped` (with the final count) is
    /// published and flushed. All within the shutdown timeout, logging what
    /// it could not flush. An error says why the host stopped by itself.
    pub async fn wait(self) -> anyhow::Result<()> {
        let pipeline = self.ingest.pipeline.clone();
        let (fed, draining) = self.ingest.feed_stopped().await;
        if fed.is_err() {
            self.ctx.cancel.cancel();
        }
        // The shutdown starts now: everything below shares one budget.
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        draining.drain(deadline).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !self.bus.flush(left).await {
            tracing::warn!("shutdown: not every tick reached the bus in time");
        }
        settle(&self.bus, &self.process, deadline).await;
        self.process_stop.cancel();
        self.process.wait().await?;
        // In-flight requests (an admin install) get what is left.
        let mut server = self.server;
        if tokio::time::timeout_at(deadline, &mut server)
            .await
            .is_err()
        {
            tracing::warn!("shutdown: HTTP requests still in flight were cut off");
            server.abort();
        }
        log_final_counts(&self.bus, &self.feed, &pipeline);
        self.bus.shutdown();
        self.ctx.fatal.check()?;
        fed
    }
}

/// How long the process role may take no tick at all before [`settle`]
/// stops waiting for it.
const SETTLE_STALL: std::time::Duration = std::time::Duration::from_millis(250);

/// Waits (until `deadline`) for the process role to have taken every tick
/// this host published. Once a subscription lost messages (a role that
/// fell behind drops what it cannot queue, and Redis cuts it off), some
/// ticks never arrive: then it also stops when the role takes nothing for
/// [`SETTLE_STALL`]; waiting for them held the shutdown for its whole
/// budget (`tickstock run` at full speed took 5.0 s to exit). Without such
/// a loss it waits to the deadline, however slow the role.
async fn settle(bus: &Bus, process: &Process, deadline: tokio::time::Instant) {
    use std::sync::atomic::Ordering::Relaxed;
    let bus_stats = bus.stats();
    let published = BusStats::get(&bus_stats.ticks_published);
    let lost_some =
        || BusStats::get(&bus_stats.lagged) > 0 || BusStats::get(&bus_stats.subscriptions_lost) > 0;
    let stats = &process.stats;
    let taken = || stats.ticks_processed.load(Relaxed) + stats.invalid_ticks.load(Relaxed);
    let (mut last, mut since) = (taken(), tokio::time::Instant::now());
    while taken() < published && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let now = taken();
        if now != last {
            (last, since) = (now, tokio::time::Instant::now());
        } else if since.elapsed() >= SETTLE_STALL && lost_some() {
            tracing::info!(
                ticks_not_taken = published.saturating_sub(now),
                "shutdown: the process role stopped taking ticks; not waiting for the rest"
            );
            break;
        }
    }
}

/// One line with where every frame and tick ended: every frame received
/// was normalized or dropped, and every tick normalized was published,
/// dropped, refused or left unconfirmed, unless the shutdown ran out of
/// time: then `frames_unprocessed` and `ticks_unpublished` say how many
/// were cut off.
fn log_final_counts(bus: &Bus, feed: &FeedStats, pipeline: &PipelineStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = bus.stats();
    let frames_received = FeedStats::get(&feed.frames_received);
    let frames_dropped = FeedStats::get(&feed.frames_dropped_queue_full);
    let frames_normalized = pipeline.frames.load(Relaxed);
    let ticks_normalized = pipeline.ticks.load(Relaxed);
    let ticks_published = BusStats::get(&s.ticks_published);
    let ticks_dropped = BusStats::get(&s.ticks_dropped);
    let ticks_refused = BusStats::get(&s.ticks_refused);
    let ticks_unconfirmed = BusStats::get(&s.ticks_unconfirmed);
    let frames_unprocessed = frames_received.saturating_sub(frames_normalized + frames_dropped);
    let ticks_unpublished = ticks_normalized
        .saturating_sub(ticks_published + ticks_dropped + ticks_refused + ticks_unconfirmed);
    tracing::info!(
        frames_received,
        frames_dropped,
        frames_waited = FeedStats::get(&feed.queue_waits),
        frames_refused_oversize = FeedStats::get(&feed.frames_dropped_oversize),
        frames_normalized,
        frames_unprocessed,
        ticks_normalized,
        messages_published = BusStats::get(&s.published),
        messages_unconfirmed = BusStats::get(&s.unconfirmed),
        ticks_published,
        ticks_dropped,
        ticks_refused,
        ticks_unconfirmed,
        ticks_unpublished,
        "stopped"
    );
}

/// The admin API, when a token is configured; with the fleet key it
/// issues its installs, rollbacks and shadows to the whole fleet.
fn admin(config: &Config, manager: &Arc<PluginManager>, fleet: Option<&Fleet>) -> Option<Admin> {
    let admin = config.admin_token.clone().map(|token| Admin {
        manager: manager.clone(),
        fleet: fleet.and_then(|f| f.issuer.clone()),
        token,
    });
    if admin.is_none() {
        tracing::info!("admin API disabled (set TICKSTOCK_ADMIN_TOKEN to enable it)");
    }
    admin
}

/// `tickstock run`.
pub async fn run_all(config: Config) -> anyhow::Result<()> {
    let host = Host::start(&config, super::shutdown_signal()).await?;
    host.wait().await
}

/// `tickstock ingest`. With `--plugin-dir`, new normalizer versions
/// dropped there are validated and hot-swapped.
pub async fn run_ingest(config: Config) -> anyhow::Result<()> {
    let ctx = RoleContext::new(&config, super::shutdown_signal())?;
    let feed = Arc::new(FeedStats::default());
    let feed_stats = feed.clone();
    let ingest = Ingest::start(&config, &ctx, feed).await?;
    let pipeline = ingest.pipeline.clone();
    let manager = ctx.start_manager(&config, vec![ingest.plugin.clone()]);
    let _fleet = ctx.join_fleet(&config, &manager, "ingest")?;
    let result = ingest.wait(config.shutdown_timeout).await;
    ctx.bus.flush(FINAL_FLUSH).await;
    log_final_counts(&ctx.bus, &feed_stats, &pipeline);
    ctx.bus.shutdown();
    ctx.fatal.check()?;
    result
}

/// `tickstock process`. With `--plugin-dir`, new health versions dropped
/// there are validated and hot-swapped.
pub async fn run_process(config: Config) -> anyhow::Result<()> {
    let ctx = RoleContext::new(&config, super::shutdown_signal())?;
    let process = Process::start(&config, &ctx, None, ctx.cancel.clone()).await?;
    let manager = ctx.start_manager(&config, vec![process.plugin.clone()]);
    let _fleet = ctx.join_fleet(&config, &manager, "process")?;
    process.wait().await.context("process role")?;
    ctx.bus.shutdown();
    ctx.fatal.check()
}

/// `tickstock dashboard`. It runs no plugin, but with an admin token it
/// serves the admin API: with the fleet key, installs, rollbacks and
/// shadows go to every instance of the fleet.
pub async fn run_dashboard(config: Config) -> anyhow::Result<()> {
    let ctx = RoleContext::new(&config, super::shutdown_signal())?;
    let cancel = ctx.cancel.clone();
    let dashboard = DashboardState::new(config.health_interval);
    follow(&ctx.bus, dashboard.clone(), cancel.clone());
    let manager = ctx.start_manager(&config, Vec::new());
    let fleet = ctx.join_fleet(&config, &manager, "dashboard")?;
    let state = AppState {
        ws_limits: config.ws.clone(),
        admin: admin(&config, &manager, fleet.as_ref()),
        fleet: fleet.as_ref().map(|f| f.roster.clone()),
        ..AppState::dashboard_only(dashboard, ctx.bus.clone(), cancel.clone())
    };
    let (_, server) = web::serve(config.listen, web::router(state), cancel).await?;
    let _ = server.await;
    ctx.bus.shutdown();
    ctx.fatal.check()
}
