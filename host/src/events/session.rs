//! `PREFIX:streaming:session_started` and `PREFIX:streaming:session_stopped`:
//! the process role's session, nested under `session` (a consumer that read
//! it flat showed no session at all, so both shapes are read back).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::session_time;

/// The session object of `streaming_session_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedSession {
    /// UUID v4.
    pub session_id: String,
    /// Universe name.
    pub universe: String,
    /// Number of symbols subscribed (0 for the whole market, `*`).
    pub symbol_count: usize,
    /// RFC 3339.
    pub start_time: String,
    /// `active`.
    pub status: String,
}

/// `PREFIX:streaming:session_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStarted {
    /// `streaming_session_started`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The session.
    pub session: StartedSession,
    /// RFC 3339.
    pub timestamp: String,
}

/// The session object of `streaming_session_stopped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoppedSession {
    /// UUID v4.
    pub session_id: String,
    /// Universe name.
    pub universe: String,
    /// RFC 3339.
    pub start_time: String,
    /// RFC 3339.
    pub stop_time: String,
    /// Seconds from start to stop.
    pub duration_seconds: f64,
    /// Ticks the session processed.
    pub ticks_processed: u64,
    /// Always 0 (kept for consumers).
    pub patterns_detected: u64,
    /// Always 0 (kept for consumers).
    pub indicators_calculated: u64,
    /// `stopped`.
    pub status: String,
}

/// `PREFIX:streaming:session_stopped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStopped {
    /// `streaming_session_stopped`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The session.
    pub session: StoppedSession,
    /// RFC 3339.
    pub timestamp: String,
}

impl SessionStarted {
    /// The event for a session that started at `start`.
    pub fn new(
        session_id: &str,
        universe: &str,
        symbol_count: usize,
        start: DateTime<Utc>,
    ) -> Self {
        let start_time = session_time(start);
        SessionStarted {
            kind: "streaming_session_started".into(),
            session: StartedSession {
                session_id: session_id.into(),
                universe: universe.into(),
                symbol_count,
                start_time: start_time.clone(),
                status: "active".into(),
            },
            timestamp: start_time,
        }
    }
}

impl SessionStopped {
    /// The event for a session that ran from `start` to `stop`.
    pub fn new(
        session_id: &str,
        universe: &str,
        start: DateTime<Utc>,
        stop: DateTime<Utc>,
        ticks_processed: u64,
    ) -> Self {
        let duration = (stop - start).num_microseconds().unwrap_or(0) as f64 / 1e6;
        SessionStopped {
            kind: "streaming_session_stopped".into(),
            session: StoppedSession {
                session_id: session_id.into(),
                universe: universe.into(),
                start_time: session_time(start),
                stop_time: session_time(stop),
                duration_seconds: (duration * 1000.0).round() / 1000.0,
                ticks_processed,
                patterns_detected: 0,
                indicators_calculated: 0,
                status: "stopped".into(),
            },
            timestamp: session_time(stop),
        }
    }
}

/// Reads a session event in either shape (nested under `session`, or flat).
pub fn session_object(event: &Value) -> Option<Map<String, Value>> {
    match event.get("session") {
        Some(Value::Object(s)) => Some(s.clone()),
        _ => {
            let obj = event.as_object()?;
            let mut flat = obj.clone();
            flat.remove("type");
            flat.contains_key("session_id").then_some(flat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_are_read() {
        let s = serde_json::json!({"type": "x", "session_id": "a", "universe": "u"});
        assert_eq!(session_object(&s).unwrap()["universe"], "u");
        let nested = serde_json::to_value(SessionStarted::new("a", "u", 2, Utc::now())).unwrap();
        assert_eq!(session_object(&nested).unwrap()["session_id"], "a");
    }
}
