//! Entry points of the roles as the CLI runs them.

use std::sync::Arc;

use anyhow::Context;

use super::dashboard::{follow, DashboardState};
use super::ingest::Ingest;
use super::process::Process;
use crate::config::Config;
use crate::feed::FeedStats;
use crate::web::{self, AppState};

/// `tickstock run`: all three roles in one process.
pub async fn run_all(config: Config) -> anyhow::Result<()> {
    let cancel = super::shutdown_signal();
    let bus = super::bus(&config)?;
    let engine = super::engine(&config)?;
    let state = DashboardState::new(config.health_interval);
    follow(&bus, state.clone(), cancel.clone());
    let (_, server) = web::serve(
        config.listen,
        web::router(AppState { dashboard: state }),
        cancel.clone(),
    )
    .await?;
    // The process role subscribes before ingest publishes its first tick.
    let feed = Arc::new(FeedStats::default());
    let process =
        Process::start(&config, &bus, &engine, Some(feed.clone()), cancel.clone()).await?;
    let ingest = Ingest::start(&config, &bus, &engine, feed, cancel.clone()).await?;
    let fed = ingest.wait().await;
    if fed.is_err() {
        cancel.cancel();
    }
    process.wait().await?;
    let _ = server.await;
    bus.shutdown();
    fed
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
    let state = DashboardState::new(config.health_interval);
    follow(&bus, state.clone(), cancel.clone());
    let (_, server) = web::serve(
        config.listen,
        web::router(AppState { dashboard: state }),
        cancel,
    )
    .await?;
    let _ = server.await;
    bus.shutdown();
    Ok(())
}
