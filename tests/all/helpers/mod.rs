//! Helpers shared by every test module, one file per concern; everything is
//! re-exported here so tests write `helpers::name`.

pub mod admin;
pub mod author;
pub mod feed;
pub mod host;
pub mod metrics;
pub mod plugins;
pub mod redis;
pub mod schema;

use std::time::Duration;

pub use admin::*;
pub use feed::*;
pub use host::*;
pub use metrics::*;
pub use plugins::*;
pub use redis::*;
pub use schema::*;

/// Polls `cond` every 20 ms until it holds or `timeout` passes; panics
/// with `what` on timeout.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        if std::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub use crate::redis_server::free_port;

/// A unique channel prefix for one test.
pub fn prefix(test: &str) -> String {
    format!("t{}-{}", std::process::id(), test)
}

/// The next WebSocket message, failing the test after 20 s instead of
/// hanging.
pub async fn next_message<S>(ws: &mut S) -> tokio_tungstenite::tungstenite::Message
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .expect("no WebSocket message within 20 s")
        .expect("the WebSocket closed")
        .expect("a WebSocket error")
}

/// The next WebSocket message as text (see [`next_message`]).
pub async fn next_text<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    next_message(ws).await.into_text().unwrap().to_string()
}
