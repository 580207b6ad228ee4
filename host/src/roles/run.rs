//! Entry points of the roles as the CLI runs them, and [`Host`], all three
//! roles in one process.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::dashboard::{follow, DashboardState};
use super::ingest::Ingest;
use super::process::Process;
use crate::bus::Bus;
use crate::config::Config;
use crate::feed::FeedStats;
use crate::web::{self, AppState};

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
    /// The ingest role.
    pub ingest: Ingest,
    /// The process role.
    pub process: Process,
    server: tokio::task::JoinHandle<()>,
    cancel: CancellationToken,
}

impl Host {
    /// Starts the dashboard, the process role, then the feed (so the
    /// process role hears the first tick). Everything stops on `cancel`.
    pub async fn start(config: &Config, cancel: CancellationToken) -> anyhow::Result<Host> {
        let bus = super::bus(config)?;
        let engine = super::engine(config)?;
        let dashboard = DashboardState::new(config.health_interval);
        follow(&bus, dashboard.clone(), cancel.clone());
        let state = AppState {
            dashboard: dashboard.clone(),
        };
        let (addr, server) = web::serve(config.listen, web::router(state), cancel.clone()).await?;
        let feed = Arc::new(FeedStats::default());
        let process =
            Process::start(config, &bus, &engine, Some(feed.clone()), cancel.clone()).await?;
        let ingest = Ingest::start(config, &bus, &engine, feed.clone(), cancel.clone()).await?;
        Ok(Host {
            bus,
            addr,
            dashboard,
            feed,
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

/// `tickstock run`.
pub async fn run_all(config: Config) -> anyhow::Result<()> {
    let host = Host::start(&config, super::shutdown_signal()).await?;
    host.wait().await
}

/// `tickstock ingest`.
pub async fn run_ingest(config: Config) -> anyhow::Result<()> {
    let cancel = super::shutdown_signal();
    let bus = super::bus(&config)?;
    let engine = super::engine(&config)?;
    let ingest = Ingest::start(
        &config,
        &bus,
        &engine,
        Arc::new(FeedStats::default()),
        cancel,
    )
    .await?;
    let result = ingest.wait().await;
    bus.flush(std::time::Duration::from_secs(2)).await;
    bus.shutdown();
    result
}

/// `tickstock process`.
pub async fn run_process(config: Config) -> anyhow::Result<()> {
    let cancel = super::shutdown_signal();
    let bus = super::bus(&config)?;
    let engine = super::engine(&config)?;
    let process = Process::start(&config, &bus, &engine, None, cancel).await?;
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
    let (_, server) =
        web::serve(config.listen, web::router(AppState { dashboard }), cancel).await?;
    let _ = server.await;
    bus.shutdown();
    Ok(())
}
