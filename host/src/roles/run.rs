//! Entry points of the roles as the CLI runs them, and [`Host`], all three
//! roles in one process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::ingest::Ingest;
use super::process::Process;
use crate::bus::Bus;
use crate::config::Config;
use crate::feed::FeedStats;
use crate::manager::PluginManager;
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
    /// The ingest role.
    pub ingest: Ingest,
    /// The process role.
    pub process: Process,
    server: tokio::task::JoinHandle<()>,
    cancel: CancellationToken,
}

impl Host {
    /// Starts the process role, then the feed (so the process role hears
    /// the first tick), then the dashboard server. Everything stops on
    /// `cancel`.
    pub async fn start(config: &Config, cancel: CancellationToken) -> anyhow::Result<Host> {
        let bus = super::bus(config)?;
        let engine = super::engine(config)?;
        let dashboard = DashboardState::new(config.health_interval);
        follow(&bus, dashboard.clone(), cancel.clone());
        let feed = Arc::new(FeedStats::default());
        let registry = PluginRegistry::new();
        let process = Process::start(
            config,
            &bus,
            &engine,
            &registry,
            Some(feed.clone()),
            cancel.clone(),
        )
        .await?;
        let ingest = Ingest::start(
            config,
            &bus,
            &engine,
            &registry,
            feed.clone(),
            cancel.clone(),
        )
        .await?;
        let running = vec![ingest.plugin.clone(), process.plugin.clone()];
        let manager = super::start_manager(config, &engine, &registry, &bus, running, &cancel);
        let state = AppState {
            admin: admin(config, &manager),
            feed: Some(feed.clone()),
            pipeline: Some(ingest.pipeline.clone()),
            process: Some(process.stats.clone()),
            registry: registry.clone(),
            ..AppState::dashboard_only(dashboard.clone(), bus.clone(), cancel.clone())
        };
        let (addr, server) =
            web::serve(config.listen, web::router(state.clone()), cancel.clone()).await?;
        Ok(Host {
            manager,
            web: state,
            bus,
            addr,
            dashboard,
            feed,
            registry,
            ingest,
            process,
            server,
            cancel,
        })
    }

    /// Waits until the host stops (after `cancel`, or when the feed fails
    /// for good), with `session_stopped` published and flushed.
    pub async fn wait(self) -> anyhow::Result<()> {
        let fed = self.ingest.wait().await;
        if fed.is_err() {
            self.cancel.cancel();
        }
        self.process.wait().await?;
        let _ = self.server.await;
        self.bus.shutdown();
        fed
    }
}

/// The admin API, when a token is configured.
fn admin(config: &Config, manager: &Arc<PluginManager>) -> Option<Admin> {
    let admin = config.admin_token.clone().map(|token| Admin {
        manager: manager.clone(),
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
    let cancel = super::shutdown_signal();
    let bus = super::bus(&config)?;
    let engine = super::engine(&config)?;
    let registry = PluginRegistry::new();
    let feed = Arc::new(FeedStats::default());
    let ingest = Ingest::start(&config, &bus, &engine, &registry, feed, cancel.clone()).await?;
    let running = vec![ingest.plugin.clone()];
    super::start_manager(&config, &engine, &registry, &bus, running, &cancel);
    let result = ingest.wait().await;
    bus.flush(FINAL_FLUSH).await;
    bus.shutdown();
    result
}

/// `tickstock process`. With `--plugin-dir`, new health versions dropped
/// there are validated and hot-swapped.
pub async fn run_process(config: Config) -> anyhow::Result<()> {
    let cancel = super::shutdown_signal();
    let bus = super::bus(&config)?;
    let engine = super::engine(&config)?;
    let registry = PluginRegistry::new();
    let process = Process::start(&config, &bus, &engine, &registry, None, cancel.clone()).await?;
    let running = vec![process.plugin.clone()];
    super::start_manager(&config, &engine, &registry, &bus, running, &cancel);
    process.wait().await.context("process role")?;
    bus.shutdown();
    Ok(())
}

/// `tickstock dashboard`.
pub async fn run_dashboard(config: Config) -> anyhow::Result<()> {
    let cancel = super::shutdown_signal();
    let bus = super::bus(&config)?;
    let dashboard = DashboardState::new(config.health_interval);
    follow(&bus, dashboard.clone(), cancel.clone());
    let state = AppState::dashboard_only(dashboard, bus.clone(), cancel.clone());
    let (_, server) = web::serve(config.listen, web::router(state), cancel).await?;
    let _ = server.await;
    bus.shutdown();
    Ok(())
}
