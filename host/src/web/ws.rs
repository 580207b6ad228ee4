//! `/ws`: pushes every dashboard event as it happens, after a full
//! snapshot on connect.
//!
//! Each client has a bounded queue (its broadcast receiver). A client that
//! falls behind loses its backlog and gets the latest snapshot instead; a
//! client that stops reading is dropped after [`SEND_TIMEOUT`]. The
//! publisher never waits on any client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

/// A client that cannot take one message in this long is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// The upgrade handler.
pub async fn handler(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.on_upgrade(move |socket| client(socket, state))
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
    stats.clients.fetch_add(1, Ordering::Relaxed);
    stats.connections.fetch_add(1, Ordering::Relaxed);
    let _connected = Connected(stats);
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
