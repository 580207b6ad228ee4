//! The admin API, under `/admin/`, enabled only when an admin token is set.
//! Every request needs `Authorization: Bearer <token>` (compared in
//! constant time); uploads are limited to [`MAX_UPLOAD`] bytes.
//!
//! - `GET  /admin/plugins`: active versions, history, rollback stack.
//! - `POST /admin/plugins/{kind}`: body = component bytes; installs it.
//! - `POST /admin/plugins/{kind}/rollback`: back to the previous version.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::manager::{InstallError, Installed, PluginManager};
use crate::plugins::PluginKind;
use crate::secret::Secret;

/// Largest component upload accepted.
pub const MAX_UPLOAD: usize = 32 << 20;

/// What the admin handlers need.
#[derive(Clone)]
pub struct Admin {
    /// Installs and rolls back.
    pub manager: Arc<PluginManager>,
    /// The bearer token.
    pub token: Secret,
}

/// The `/admin` routes, or a router that says the API is disabled.
pub fn router(admin: Option<Admin>) -> Router {
    let Some(admin) = admin else {
        return Router::new().route(
            "/admin/{*rest}",
            axum::routing::any(|| async {
                error(StatusCode::NOT_FOUND, "the admin API is disabled: start the host with TICKSTOCK_ADMIN_TOKEN (or --admin-token)")
            }),
        );
    };
    Router::new()
        .route("/admin/plugins", get(list))
        .route("/admin/plugins/{kind}", post(install))
        .route("/admin/plugins/{kind}/rollback", post(rollback))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .route_layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .with_state(admin)
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({"error": message.into()}))).into_response()
}

async fn authorize(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok: bool = presented
        .as_bytes()
        .ct_eq(admin.token.expose().as_bytes())
        .into();
    if !ok || presented.is_empty() {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "missing or wrong admin token"})),
        )
            .into_response();
    }
    next.run(request).await
}

fn kind(raw: &str) -> Result<PluginKind, Box<Response>> {
    raw.parse()
        .map_err(|e: String| Box::new(error(StatusCode::NOT_FOUND, e)))
}

fn outcome(result: Result<Installed, InstallError>) -> Response {
    match result {
        Ok(done) => (StatusCode::OK, Json(json!({"ok": true, "installed": done}))).into_response(),
        Err(err @ InstallError::NotHere(_)) => error(StatusCode::NOT_FOUND, err.to_string()),
        Err(err @ InstallError::NothingToRollBack(_)) => {
            error(StatusCode::CONFLICT, err.to_string())
        }
        Err(err) if err.is_refusal() => error(StatusCode::UNPROCESSABLE_ENTITY, err.to_string()),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

async fn list(State(admin): State<Admin>) -> Response {
    Json(admin.manager.describe()).into_response()
}

async fn install(State(admin): State<Admin>, Path(raw): Path<String>, body: Bytes) -> Response {
    let kind = match kind(&raw) {
        Ok(k) => k,
        Err(resp) => return *resp,
    };
    if body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the request body must be the component's bytes",
        );
    }
    // Its own task: an install runs to completion (and is recorded) even if
    // the client goes away mid-swap and this handler is dropped.
    let manager = admin.manager.clone();
    let task =
        tokio::spawn(async move { manager.install(kind, body.to_vec(), "admin upload").await });
    joined(task.await)
}

/// The outcome of an install or rollback task.
fn joined(result: Result<Result<Installed, InstallError>, tokio::task::JoinError>) -> Response {
    match result {
        Ok(outcome_of_task) => outcome(outcome_of_task),
        Err(err) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the install task failed: {err}"),
        ),
    }
}

async fn rollback(State(admin): State<Admin>, Path(raw): Path<String>) -> Response {
    let kind = match kind(&raw) {
        Ok(k) => k,
        Err(resp) => return *resp,
    };
    let manager = admin.manager.clone();
    let reason = Some("requested through the admin API".to_string());
    joined(tokio::spawn(async move { manager.rollback(kind, reason).await }).await)
}
