//! The HTTP server of the dashboard role: the status API, liveness and
//! readiness, and (in later modules) the page, its WebSocket and the admin
//! API. Handlers are thin: they read [`AppState`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::roles::dashboard::DashboardState;

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// The latest session / health / feed state.
    pub dashboard: Arc<DashboardState>,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/streaming/api/status", get(status))
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn status(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.dashboard.status())
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Binds `listen` and serves until `cancel`; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    router: Router,
    cancel: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("dashboard server cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("dashboard server address")?;
    let task = tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(err) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %err, "dashboard server failed");
        }
    });
    tracing::info!(%addr, "dashboard listening on http://{addr}/");
    Ok((addr, task))
}
