//! `PREFIX:deadletter`: a frame the normalizer failed on (trap, deadline,
//! memory limit), with the plugin version and the error, so that nothing
//! the feed delivered disappears without a trace.

use serde::{Deserialize, Serialize};

/// `PREFIX:deadletter` (`"type": "deadletter"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "deadletter")]
pub struct DeadLetter {
    /// `name@version` of the normalizer that failed.
    pub plugin: String,
    /// What went wrong.
    pub error: String,
    /// The frame as received, cut to its first 64 KiB.
    pub frame: String,
    /// The frame's whole length in bytes (more than `frame` holds when it
    /// was cut).
    pub frame_bytes: usize,
    /// When the feed read the frame, Unix ms.
    pub received_ms: i64,
    /// When the letter was published (milliseconds, `Z`).
    pub timestamp: String,
}
