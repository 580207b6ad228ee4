//! The Massive WebSocket protocol as the client speaks it: the messages it
//! sends, the status events it acts on, and the shape of the events both
//! it and the simulator handle. The protocol facts are in
//! `docs/massive-protocol.md`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The `status` values of status events.
pub mod status {
    /// The server accepted the socket.
    pub const CONNECTED: &str = "connected";
    /// The key was accepted.
    pub const AUTH_SUCCESS: &str = "auth_success";
    /// The key was refused (fatal).
    pub const AUTH_FAILED: &str = "auth_failed";
    /// No `auth` arrived in time.
    pub const AUTH_TIMEOUT: &str = "auth_timeout";
    /// A subscription ack.
    pub const SUCCESS: &str = "success";
    /// A refused action or topic.
    pub const ERROR: &str = "error";
    /// Another connection took the key; this one is closed.
    pub const MAX_CONNECTIONS: &str = "max_connections";
    /// The client reads too slowly.
    pub const SLOW_CONSUMER: &str = "slow_consumer";
    /// The server closes the connection.
    pub const FORCE_DISCONNECT: &str = "force_disconnect";
}

/// The `action` values of client messages.
pub mod action {
    /// Authenticate with the API key.
    pub const AUTH: &str = "auth";
    /// Subscribe to topics.
    pub const SUBSCRIBE: &str = "subscribe";
    /// Unsubscribe from topics.
    pub const UNSUBSCRIBE: &str = "unsubscribe";
}

/// A client → server message (`{"action":"auth","params":"KEY"}`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Action<'a> {
    /// `auth`, `subscribe` or `unsubscribe` (see [`action`]).
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    /// The key, or a comma-separated topic list.
    #[serde(borrow, default)]
    pub params: Cow<'a, str>,
}

impl<'a> Action<'a> {
    /// An action with its parameters.
    pub fn new(action: &'a str, params: &'a str) -> Self {
        Action {
            action: Cow::Borrowed(action),
            params: Cow::Borrowed(params),
        }
    }
}

/// A status event as the server sends it.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEvent<'a> {
    /// Always `status`.
    pub ev: &'static str,
    /// One of [`status`].
    pub status: &'a str,
    /// Human-readable text.
    pub message: Cow<'a, str>,
}

impl<'a> StatusEvent<'a> {
    /// A status event.
    pub fn new(status: &'a str, message: impl Into<Cow<'a, str>>) -> Self {
        StatusEvent {
            ev: "status",
            status,
            message: message.into(),
        }
    }
}

/// A frame of status events (a JSON array).
pub fn status_frame(events: &[StatusEvent<'_>]) -> String {
    // A slice of plain structs of strings always serializes.
    serde_json::to_string(events).unwrap_or_else(|_| "[]".into())
}

/// The most bytes of topic list put in one subscribe frame.
pub const SUBSCRIBE_CHUNK_BYTES: usize = 8 * 1024;

/// Splits topics into comma-joined chunks of at most
/// [`SUBSCRIBE_CHUNK_BYTES`] (a single longer topic gets its own chunk).
pub fn subscribe_chunks(topics: &[String]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for topic in topics {
        if !current.is_empty() && current.len() + 1 + topic.len() > SUBSCRIBE_CHUNK_BYTES {
            chunks.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(topic);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// A status event from the server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    /// `connected`, `auth_success`, `auth_failed`, `success`, ...
    pub status: String,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
struct AnyEvent {
    #[serde(default)]
    ev: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Whether a frame may hold status events. A cheap substring test, so data
/// frames are never parsed twice on the reader task.
pub fn may_hold_status(frame: &str) -> bool {
    frame.contains("\"status\"")
}

/// The status events in a frame (lenient: anything unparsable yields none).
pub fn statuses(frame: &str) -> Vec<Status> {
    let events: Vec<AnyEvent> = match serde_json::from_str(frame) {
        Ok(events) => events,
        Err(_) => match serde_json::from_str::<AnyEvent>(frame) {
            Ok(one) => vec![one],
            Err(_) => return Vec::new(),
        },
    };
    events
        .into_iter()
        .filter(|e| e.ev.as_deref() == Some("status"))
        .filter_map(|e| {
            Some(Status {
                status: e.status?,
                message: e.message.unwrap_or_default(),
            })
        })
        .collect()
}

/// A trade event (`T`), serialized exactly as Massive sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Trade {
    /// `T`.
    pub ev: &'static str,
    /// Symbol.
    pub sym: String,
    /// Exchange id.
    pub x: u8,
    /// Trade id.
    pub i: String,
    /// Tape.
    pub z: u8,
    /// Price.
    pub p: f64,
    /// Size.
    pub s: u64,
    /// Conditions (absent on plain round lots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub c: Option<Vec<u8>>,
    /// SIP timestamp, Unix ms.
    pub t: i64,
    /// Sequence number.
    pub q: u64,
}

/// A quote event (`Q`).
#[derive(Debug, Clone, Serialize)]
pub struct Quote {
    /// `Q`.
    pub ev: &'static str,
    /// Symbol.
    pub sym: String,
    /// Bid exchange id.
    pub bx: u8,
    /// Bid price.
    pub bp: f64,
    /// Bid size.
    pub bs: u64,
    /// Ask exchange id.
    pub ax: u8,
    /// Ask price.
    pub ap: f64,
    /// Ask size (`as` on the wire).
    #[serde(rename = "as")]
    pub ask_size: u64,
    /// Condition.
    pub c: u8,
    /// SIP timestamp, Unix ms.
    pub t: i64,
    /// Sequence number.
    pub q: u64,
    /// Tape.
    pub z: u8,
}

/// An aggregate event (`A` per second, `AM` per minute).
#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    /// `A` or `AM`.
    pub ev: &'static str,
    /// Symbol.
    pub sym: String,
    /// Window volume.
    pub v: u64,
    /// Day volume.
    pub av: u64,
    /// Official open.
    pub op: f64,
    /// Window VWAP.
    pub vw: f64,
    /// Window open.
    pub o: f64,
    /// Window close.
    pub c: f64,
    /// Window high.
    pub h: f64,
    /// Window low.
    pub l: f64,
    /// Day VWAP.
    pub a: f64,
    /// Average trade size.
    pub z: u64,
    /// Window start, Unix ms.
    pub s: i64,
    /// Window end, Unix ms.
    pub e: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_stay_under_the_limit_and_keep_every_topic() {
        let topics: Vec<String> = (0..3000).map(|i| format!("T.SYM{i}")).collect();
        let chunks = subscribe_chunks(&topics);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.len() <= SUBSCRIBE_CHUNK_BYTES));
        let back: Vec<&str> = chunks.iter().flat_map(|c| c.split(',')).collect();
        assert_eq!(back.len(), 3000);
        assert_eq!(back[2999], "T.SYM2999");
    }

    #[test]
    fn statuses_are_found_in_mixed_frames() {
        let f = r#"[{"ev":"status","status":"auth_success","message":"authenticated"},{"ev":"T","sym":"A"}]"#;
        assert!(may_hold_status(f));
        assert_eq!(
            statuses(f),
            vec![Status {
                status: "auth_success".into(),
                message: "authenticated".into()
            }]
        );
        assert!(statuses("garbage").is_empty());
        assert!(!may_hold_status(r#"[{"ev":"T","sym":"A"}]"#));
    }
}
