//! The HTTP server of the dashboard role: the page and its live WebSocket,
//! the status API, liveness / readiness, Prometheus metrics (and, in
//! `admin`, the plugin admin API). Handlers are thin: they read
//! [`AppState`].

mod activity;
pub mod admin;
mod assets;
pub mod metrics;
pub mod state;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::feed::FeedStats;
use crate::fleet::RosterReader;
use crate::health_loop::ProcessStats;
use crate::pipeline::PipelineStats;
use crate::plugins::{PluginKind, PluginRegistry};
use state::DashboardState;

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// The latest session / health / feed state.
    pub dashboard: Arc<DashboardState>,
    /// The bus.
    pub bus: Bus,
    /// Active plugins of this process.
    pub registry: Arc<PluginRegistry>,
    /// The feed, when it runs in this process.
    pub feed: Option<Arc<FeedStats>>,
    /// The normalizer pipeline, when it runs in this process.
    pub pipeline: Option<Arc<PipelineStats>>,
    /// The process role, when it runs in this process.
    pub process: Option<Arc<ProcessStats>>,
    /// WebSocket clients.
    pub ws: Arc<ws::WsStats>,
    /// WebSocket limits.
    pub ws_limits: ws::WsLimits,
    /// The metrics renderer.
    pub metrics: Arc<metrics::Metrics>,
    /// Cancelled at shutdown: long-lived connections (WebSockets) close.
    pub shutdown: CancellationToken,
    /// The admin API, when enabled.
    pub admin: Option<admin::Admin>,
    /// The fleet's roster (with Redis), for `GET /api/fleet`.
    pub fleet: Option<Arc<RosterReader>>,
}

impl AppState {
    /// State for a dashboard that runs no other role.
    pub fn dashboard_only(
        dashboard: Arc<DashboardState>,
        bus: Bus,
        shutdown: CancellationToken,
    ) -> AppState {
        AppState {
            dashboard,
            bus,
            registry: PluginRegistry::new(),
            feed: None,
            pipeline: None,
            process: None,
            ws: Arc::default(),
            ws_limits: ws::WsLimits::default(),
            metrics: Arc::default(),
            shutdown,
            admin: None,
            fleet: None,
        }
    }
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/style.css", get(assets::style_css))
        .route("/vendor/uplot/uPlot.iife.min.js", get(assets::uplot_js))
        .route("/vendor/uplot/uPlot.min.css", get(assets::uplot_css))
        .route("/vendor/uplot/LICENSE", get(assets::uplot_license))
        .route("/ws", get(ws::handler))
        .route("/streaming/api/status", get(status))
        .route("/api/fleet", get(fleet))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(admin::router(state.admin))
}

async fn status(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.dashboard.status())
}

/// The fleet's instances and whether each runs the desired versions.
async fn fleet(State(state): State<AppState>) -> axum::response::Response {
    let Some(roster) = &state.fleet else {
        let body = json!({"error": "no fleet: this process has no Redis (--redis-url)"});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    match roster.read().await {
        Ok(roster) => Json(roster).into_response(),
        Err(err) => {
            let body = json!({"error": err.to_string()});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the bus is connected, the feed (if it runs here) is
/// streaming, and the plugins of the roles that run here are loaded.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let bus = state.bus.stats().is_connected();
    let feed = state.feed.as_ref().map(|f| f.is_streaming());
    let normalizer = state
        .pipeline
        .is_some()
        .then(|| state.registry.active(PluginKind::Normalizer).is_some());
    let health = state
        .process
        .is_some()
        .then(|| state.registry.active(PluginKind::Health).is_some());
    let ready = bus && feed != Some(false) && normalizer != Some(false) && health != Some(false);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"ready": ready, "bus_connected": bus, "feed_connected": feed, "normalizer_loaded": normalizer, "health_loaded": health});
    (code, Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state),
    )
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
