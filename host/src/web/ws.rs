//! `/ws`: pushes every dashboard event as it happens, after a full
//! snapshot on connect.
//!
//! Each client has a bounded queue (its broadcast receiver). A client that
//! falls behind loses its backlog and gets the latest snapshot instead; a
//! client that stops reading is dropped after [`SEND_TIMEOUT`]. The
//! publisher never waits on any client.
//!
//! Limits: a client message (clients have nothing to say) larger than
//! [`MAX_CLIENT_MESSAGE`] closes that client; past `--ws-max-clients` a new
//! client is closed at once with a reason (code 1013, try again later); a
//! browser page of another origin is refused (403) unless listed in
//! `--ws-origins`; clients that send no `Origin` (scripts) are allowed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

/// A client that cannot take one message in this long is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a client may send.
pub const MAX_CLIENT_MESSAGE: usize = 4 << 10;

/// Limits of the dashboard's WebSocket (`/ws`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsLimits {
    /// Clients at once.
    pub max_clients: usize,
    /// Origins allowed besides the page's own.
    pub origins: Vec<String>,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_clients: 1_000,
            origins: Vec::new(),
        }
    }
}

/// WebSocket client counters.
#[derive(Debug, Default)]
pub struct WsStats {
    /// Connected now.
    pub clients: AtomicU64,
    /// Connected ever.
    pub connections: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Events skipped for clients that fell behind (they got a snapshot).
    pub lagged: AtomicU64,
    /// Clients dropped for not reading.
    pub dropped_slow: AtomicU64,
    /// Clients turned away: too many clients.
    pub refused_full: AtomicU64,
    /// Clients turned away: a foreign `Origin`.
    pub refused_origin: AtomicU64,
}

/// The upgrade handler.
pub async fn handler(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(state): State<AppState>,
) -> Response {
    if let Err(origin) = origin_allowed(&headers, &state.ws_limits.origins) {
        state.ws.refused_origin.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%origin, "refusing a dashboard WebSocket from a foreign origin");
        return (
            StatusCode::FORBIDDEN,
            format!("origin {origin} may not open this WebSocket (see --ws-origins)"),
        )
            .into_response();
    }
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| client(socket, state))
}

/// `Ok` when the request has no `Origin` (not a browser page), or one of
/// the page's own origin or of `allowed`; `Err` with the origin otherwise.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("(not text)").to_string();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let own = [format!("http://{host}"), format!("https://{host}")];
    if own.contains(&origin) || allowed.contains(&origin) {
        Ok(())
    } else {
        Err(origin)
    }
}

struct Connected<'a>(&'a WsStats);

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn send(socket: &mut WebSocket, stats: &WsStats, text: String) -> bool {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::text(text))).await {
        Ok(Ok(())) => {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            true
        }
        Ok(Err(_)) => false,
        Err(_) => {
            stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
            tracing::info!("dropping a dashboard client that stopped reading");
            false
        }
    }
}

async fn client(mut socket: WebSocket, state: AppState) {
    let stats = &state.ws;
    let before = stats.clients.fetch_add(1, Ordering::Relaxed);
    stats.connections.fetch_add(1, Ordering::Relaxed);
    let _connected = Connected(stats);
    let max = state.ws_limits.max_clients;
    if before >= max as u64 {
        stats.refused_full.fetch_add(1, Ordering::Relaxed);
        let reason = format!("too many dashboard clients (at most {max}); try again later");
        let close = CloseFrame {
            code: close_code::AGAIN,
            reason: reason.into(),
        };
        let _ = socket.send(Message::Close(Some(close))).await;
        return;
    }
    // Subscribe first, so nothing between the snapshot and the stream is lost.
    let mut events = state.dashboard.events();
    if !send(&mut socket, stats, state.dashboard.snapshot().to_string()).await {
        return;
    }
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            event = events.recv() => {
                let text = match event {
                    Ok(event) => event.to_string(),
                    Err(RecvError::Lagged(missed)) => {
                        stats.lagged.fetch_add(missed, Ordering::Relaxed);
                        state.dashboard.snapshot().to_string()
                    }
                    Err(RecvError::Closed) => return,
                };
                if !send(&mut socket, stats, text).await {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
