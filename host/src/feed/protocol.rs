//! The Massive WebSocket protocol as the client speaks it: the messages it
//! sends and the status events it acts on. See `shared/massive-protocol.md`.

use serde::{Deserialize, Serialize};

/// A client → server message (`{"action":"auth","params":"KEY"}`).
#[derive(Debug, Serialize)]
pub struct Action<'a> {
    /// `auth`, `subscribe` or `unsubscribe`.
    pub action: &'a str,
    /// The key, or a comma-separated topic list.
    pub params: &'a str,
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
