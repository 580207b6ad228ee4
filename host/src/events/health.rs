//! `PREFIX:streaming:health`: one event per interval per session. The
//! health object is nested under `health`: the health plugin's metrics plus
//! the host's own fields ([`crate::contract::HOST_HEALTH_FIELDS`]), which
//! a plugin cannot override.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{health_time, StartedSession};
use crate::contract::{HOST_HEALTH_FIELDS, REASON_FIELD};

/// `PREFIX:streaming:health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// `streaming_health`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The health object: `session_id`, `status`, the metrics, `reason`
    /// when there is one, `timestamp`.
    pub health: Map<String, Value>,
    /// The session the event belongs to (what `session_started` said), so
    /// that a consumer that starts mid-session learns it from the next
    /// health event. Older producers did not send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<StartedSession>,
    /// Same as `health.timestamp`.
    pub timestamp: String,
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
            if !HOST_HEALTH_FIELDS.contains(&k.as_str()) {
                health.insert(k, v);
            }
        }
        if !reason.is_empty() {
            health.insert(REASON_FIELD.into(), Value::from(reason));
        }
        health.insert("timestamp".into(), Value::from(timestamp.clone()));
        HealthEvent {
            kind: "streaming_health".into(),
            health,
            session: None,
            timestamp,
        }
    }

    /// The same event, naming its session.
    pub fn in_session(mut self, session: StartedSession) -> Self {
        self.session = Some(session);
        self
    }
}

/// Reads a health event in either shape: nested under `health` (what the
/// host publishes) or flat (health fields at the top level), as consumers
/// of older producers must.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_are_read() {
        let nested = serde_json::json!({"type": "streaming_health", "health": {"status": "healthy", "ticks_per_second": 1.5}});
        let flat = serde_json::json!({"type": "streaming_health", "status": "healthy", "ticks_per_second": 1.5});
        assert_eq!(health_object(&nested), health_object(&flat));
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
