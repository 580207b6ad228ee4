//! `PREFIX:feed`: the ingest role's view of the Massive connection,
//! published on every change and every few seconds. The process role reads
//! it to report the feed's state in health when the two roles run as
//! separate processes; the dashboard shows it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
/// Where the connection is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedState {
    /// Not connected (waiting to reconnect, or not started).
    #[default]
    Disconnected,
    /// Opening the socket / waiting for `connected`.
    Connecting,
    /// Sent `auth`, waiting for the answer.
    Authenticating,
    /// Authenticated and subscribed; data flowing.
    Streaming,
    /// Stopped for good (shutdown or `auth_failed`).
    Stopped,
    /// A state this version does not know (sent by a newer ingest role);
    /// never sent by this one.
    #[serde(other)]
    Unknown,
}

/// `PREFIX:feed` (`"type": "feed_status"`). Read leniently: a field an
/// older ingest role does not send takes its default, and a newer one's
/// extra fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "feed_status", default)]
pub struct FeedStatus {
    /// Where the connection is.
    pub state: FeedState,
    /// Whether ticks are flowing (authenticated and subscribed).
    pub connected: bool,
    /// Whether `state` or `issue` changed since the previous event.
    pub changed: bool,
    /// Why the feed is not streaming, when it is not.
    pub issue: Option<String>,
    /// Connection attempts since start.
    pub connect_attempts: u64,
    /// Reconnects since start.
    pub reconnects: u64,
    /// Frames read from the socket.
    pub frames_received: u64,
    /// Frames dropped because the normalization queue was full.
    pub frames_dropped: u64,
    /// Ticks the normalizer produced.
    pub ticks_normalized: u64,
    /// Frames the normalizer failed on (dead letters).
    pub normalizer_errors: u64,
    /// Skipped events by reason (`status`, `unknown_event`, `malformed`,
    /// `not_published`).
    pub skipped: BTreeMap<String, u64>,
    /// `max_connections` statuses: another client took the API key.
    pub max_connections: u64,
    /// `slow_consumer` statuses.
    pub slow_consumer: u64,
    /// `force_disconnect` statuses.
    pub force_disconnect: u64,
    /// When the event was made (milliseconds, `Z`).
    pub timestamp: String,
}
