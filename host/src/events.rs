//! The wire events of the contract (`shared/contract.md`), as typed serde
//! structs: the single source of truth for their shapes, checked against the
//! JSON Schemas in `schemas/` by the tests.
//!
//! Time formats follow the seed exactly: session times are RFC 3339 with
//! microseconds and `+00:00`; health timestamps have milliseconds and `Z`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `2025-10-07T19:21:51.658768+00:00`
pub fn session_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// `2025-10-07T19:22:02.000Z`
pub fn health_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The session object of `streaming_session_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedSession {
    /// UUID v4.
    pub session_id: String,
    /// Universe name.
    pub universe: String,
    /// Number of symbols subscribed.
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

/// `PREFIX:streaming:health`: the health object is the plugin's metrics
/// plus the host's `session_id`, `status` and `timestamp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// `streaming_health`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The health object (nested, contract §3).
    pub health: Map<String, Value>,
    /// Same as `health.timestamp`.
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

impl HealthEvent {
    /// Builds the event from the session id, status, reason and the
    /// plugin's metrics (any extra fields ride along).
    pub fn new(
        session_id: &str,
        status: &str,
        reason: &str,
        metrics: Map<String, Value>,
        at: DateTime<Utc>,
    ) -> Self {
        let timestamp = health_time(at);
        let mut health = Map::new();
        health.insert("session_id".into(), Value::from(session_id));
        health.insert("status".into(), Value::from(status));
        for (k, v) in metrics {
            // The host's own fields win over a plugin's.
            if !matches!(k.as_str(), "session_id" | "status" | "timestamp") {
                health.insert(k, v);
            }
        }
        if !reason.is_empty() {
            health.insert("reason".into(), Value::from(reason));
        }
        health.insert("timestamp".into(), Value::from(timestamp.clone()));
        HealthEvent {
            kind: "streaming_health".into(),
            health,
            timestamp,
        }
    }
}

/// Reads a health event in either shape: nested under `health` (contract)
/// or flat (health fields at the top level), as consumers must.
pub fn health_object(event: &Value) -> Option<Map<String, Value>> {
    match event.get("health") {
        Some(Value::Object(h)) => Some(h.clone()),
        _ => {
            let obj = event.as_object()?;
            let mut flat = obj.clone();
            flat.remove("type");
            flat.contains_key("status").then_some(flat)
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
    use chrono::TimeZone;

    #[test]
    fn time_formats_match_the_seed() {
        let t = Utc.with_ymd_and_hms(2025, 10, 7, 19, 21, 51).unwrap()
            + chrono::Duration::microseconds(658_768);
        assert_eq!(session_time(t), "2025-10-07T19:21:51.658768+00:00");
        let t = Utc.with_ymd_and_hms(2025, 10, 7, 19, 22, 2).unwrap();
        assert_eq!(health_time(t), "2025-10-07T19:22:02.000Z");
    }

    #[test]
    fn both_shapes_are_read() {
        let nested = serde_json::json!({"type": "streaming_health", "health": {"status": "healthy", "ticks_per_second": 1.5}});
        let flat = serde_json::json!({"type": "streaming_health", "status": "healthy", "ticks_per_second": 1.5});
        assert_eq!(health_object(&nested), health_object(&flat));
        let s = serde_json::json!({"type": "x", "session_id": "a", "universe": "u"});
        assert_eq!(session_object(&s).unwrap()["universe"], "u");
    }

    #[test]
    fn health_object_is_nested_with_host_fields() {
        let mut m = Map::new();
        m.insert("active_symbols".into(), Value::from(3));
        m.insert("status".into(), Value::from("spoofed"));
        let e = HealthEvent::new("sid", "healthy", "", m, Utc::now());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "streaming_health");
        assert_eq!(v["health"]["status"], "healthy");
        assert_eq!(v["health"]["active_symbols"], 3);
        assert_eq!(v["health"]["timestamp"], v["timestamp"]);
    }
}
