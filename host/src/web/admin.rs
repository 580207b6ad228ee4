//! The admin API, under `/admin/`, enabled only when an admin token is set.
//! Every request needs `Authorization: Bearer <token>` (compared in
//! constant time); uploads are limited to [`MAX_UPLOAD`] bytes.
//!
//! - `GET  /admin/plugins`: active versions, history, rollback stack.
//! - `POST /admin/plugins/{kind}`: body = component bytes; installs it.
//! - `POST /admin/plugins/{kind}/rollback`: back to the previous version.
//! - `POST /admin/plugins/{kind}/shadow[?for=SECONDS]`: body = component
//!   bytes; validates it and runs it as a shadow of the live version.
//! - `GET /admin/plugins/{kind}/shadow`: the shadow's report (the last one
//!   after it ended).
//! - `DELETE /admin/plugins/{kind}/shadow`: ends it; its final report.
//! - `POST /admin/plugins/{kind}/shadow/promote`: installs the candidate
//!   through the normal swap.
//!
//! With the fleet key (see [`crate::fleet`]) the installs, rollbacks and
//! shadow commands are validated here and issued to every instance of the
//! fleet: the answer is `202 Accepted` with the command's generation, and
//! `GET /admin/plugins` adds the fleet's roster (who runs what, and
//! whether it is the desired version).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::fleet::{IssueError, Issued, Issuer};
use crate::manager::{InstallError, Installed, PluginManager};
use crate::plugins::PluginKind;
use crate::secret::Secret;
use crate::shadow::ShadowReport;

/// Largest component upload accepted.
pub const MAX_UPLOAD: usize = 32 << 20;

/// What the admin handlers need.
#[derive(Clone)]
pub struct Admin {
    /// Installs and rolls back the plugins of this process.
    pub manager: Arc<PluginManager>,
    /// With the fleet key: installs, rollbacks and shadows go to every
    /// instance of the fleet (this one included) instead.
    pub fleet: Option<Arc<Issuer>>,
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
        .route(
            "/admin/plugins/{kind}/shadow",
            post(start_shadow).get(shadow_report).delete(stop_shadow),
        )
        .route("/admin/plugins/{kind}/shadow/promote", post(promote_shadow))
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

/// The `{kind}` of the path; anything else is a 404 that says which kinds
/// there are.
struct Kind(PluginKind);

impl<S: Send + Sync> FromRequestParts<S> for Kind {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        raw.parse()
            .map(Kind)
            .map_err(|e: String| error(StatusCode::NOT_FOUND, e))
    }
}

/// A request body that is a component: not empty (and within
/// [`MAX_UPLOAD`], which the router's body limit enforces).
struct Component(Vec<u8>);

impl<S: Send + Sync> FromRequest<S> for Component {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if body.is_empty() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "the request body must be the component's bytes",
            ));
        }
        Ok(Component(body.to_vec()))
    }
}

/// A handler's task that failed (the runtime is stopping, or it panicked).
fn task_failed(what: &str, err: tokio::task::JoinError) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the {what} task failed: {err}"),
    )
}

fn outcome(result: Result<Installed, InstallError>) -> Response {
    match result {
        Ok(done) => (StatusCode::OK, Json(json!({"ok": true, "installed": done}))).into_response(),
        Err(err @ InstallError::NotHere(_)) => error(StatusCode::NOT_FOUND, err.to_string()),
        Err(err @ InstallError::NothingToRollBack(_)) => {
            error(StatusCode::CONFLICT, err.to_string())
        }
        Err(err @ (InstallError::ShadowRunning(_) | InstallError::LiveChanged(_))) => {
            error(StatusCode::CONFLICT, err.to_string())
        }
        Err(err @ InstallError::NoShadow(_)) => error(StatusCode::NOT_FOUND, err.to_string()),
        Err(err) if err.is_refusal() => error(StatusCode::UNPROCESSABLE_ENTITY, err.to_string()),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

async fn list(State(admin): State<Admin>) -> Response {
    let mut body = admin.manager.describe();
    if let Some(fleet) = &admin.fleet {
        body["fleet"] = match fleet.roster().read().await {
            Ok(roster) => json!(roster),
            Err(err) => json!({"error": err.to_string()}),
        };
    }
    Json(body).into_response()
}

/// The answer to a fleet command: 202 with what was issued.
fn issued(result: Result<Result<Issued, IssueError>, tokio::task::JoinError>) -> Response {
    match result {
        Ok(Ok(issued)) => (
            StatusCode::ACCEPTED,
            Json(json!({"ok": true, "fleet": issued})),
        )
            .into_response(),
        Ok(Err(IssueError::Refused(err))) => outcome(Err(err)),
        Ok(Err(err @ (IssueError::NothingToRollBack(_) | IssueError::ShadowRunning(_)))) => {
            error(StatusCode::CONFLICT, err.to_string())
        }
        Ok(Err(err @ IssueError::NoShadow(_))) => error(StatusCode::NOT_FOUND, err.to_string()),
        Ok(Err(err @ IssueError::Store(_))) => {
            error(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
        }
        Err(err) => task_failed("fleet", err),
    }
}

async fn install(
    State(admin): State<Admin>,
    Kind(kind): Kind,
    Component(bytes): Component,
) -> Response {
    if let Some(fleet) = admin.fleet.clone() {
        return issued(tokio::spawn(async move { fleet.install(kind, bytes).await }).await);
    }
    // Its own task: an install runs to completion (and is recorded) even if
    // the client goes away mid-swap and this handler is dropped.
    let manager = admin.manager.clone();
    let task = tokio::spawn(async move { manager.install(kind, bytes, "admin upload").await });
    joined(task.await)
}

/// The outcome of an install or rollback task.
fn joined(result: Result<Result<Installed, InstallError>, tokio::task::JoinError>) -> Response {
    match result {
        Ok(outcome_of_task) => outcome(outcome_of_task),
        Err(err) => task_failed("install", err),
    }
}

async fn rollback(State(admin): State<Admin>, Kind(kind): Kind) -> Response {
    if let Some(fleet) = admin.fleet.clone() {
        return issued(tokio::spawn(async move { fleet.rollback(kind).await }).await);
    }
    let manager = admin.manager.clone();
    let reason = Some("requested through the admin API".to_string());
    joined(tokio::spawn(async move { manager.rollback(kind, reason).await }).await)
}

/// `?for=SECONDS` of a shadow start.
#[derive(serde::Deserialize)]
struct ShadowFor {
    #[serde(rename = "for")]
    seconds: Option<f64>,
}

fn shadow_outcome(result: Result<ShadowReport, InstallError>) -> Response {
    match result {
        Ok(report) => (StatusCode::OK, Json(json!({"ok": true, "shadow": report}))).into_response(),
        Err(err) => outcome(Err(err)),
    }
}

async fn start_shadow(
    State(admin): State<Admin>,
    Kind(kind): Kind,
    query: Result<Query<ShadowFor>, axum::extract::rejection::QueryRejection>,
    Component(bytes): Component,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "for= must be a number of seconds, e.g. ?for=600",
        );
    };
    let duration = match query.seconds {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_SHADOW_SECONDS => {
            Some(std::time::Duration::from_secs_f64(s))
        }
        Some(s) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("for={s}: give seconds, more than 0 and at most {MAX_SHADOW_SECONDS}"),
            )
        }
    };
    if let Some(fleet) = admin.fleet.clone() {
        return issued(
            tokio::spawn(async move { fleet.shadow(kind, bytes, duration).await }).await,
        );
    }
    let manager = admin.manager.clone();
    let task = tokio::spawn(async move { manager.start_shadow(kind, bytes, duration).await });
    match task.await {
        Ok(result) => shadow_outcome(result),
        Err(err) => task_failed("shadow", err),
    }
}

/// The longest shadow run `?for=` accepts: a week.
const MAX_SHADOW_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

async fn shadow_report(State(admin): State<Admin>, Kind(kind): Kind) -> Response {
    shadow_outcome(
        admin
            .manager
            .shadow_report(kind)
            .ok_or(InstallError::NoShadow(kind)),
    )
}

async fn stop_shadow(State(admin): State<Admin>, Kind(kind): Kind) -> Response {
    if let Some(fleet) = admin.fleet.clone() {
        return issued(tokio::spawn(async move { fleet.stop_shadow(kind).await }).await);
    }
    shadow_outcome(admin.manager.stop_shadow(kind))
}

async fn promote_shadow(State(admin): State<Admin>, Kind(kind): Kind) -> Response {
    if let Some(fleet) = admin.fleet.clone() {
        return issued(tokio::spawn(async move { fleet.promote(kind).await }).await);
    }
    let manager = admin.manager.clone();
    joined(tokio::spawn(async move { manager.promote_shadow(kind).await }).await)
}
