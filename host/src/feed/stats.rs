//! Counters and state of the feed, shared with health, metrics and tests.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

pub use crate::events::feed::FeedState;

impl FeedState {
    fn from_u8(v: u8) -> FeedState {
        match v {
            1 => FeedState::Connecting,
            2 => FeedState::Authenticating,
            3 => FeedState::Streaming,
            4 => FeedState::Stopped,
            _ => FeedState::Disconnected,
        }
    }
    fn as_u8(self) -> u8 {
        match self {
            FeedState::Disconnected => 0,
            FeedState::Connecting => 1,
            FeedState::Authenticating => 2,
            FeedState::Streaming => 3,
            FeedState::Stopped | FeedState::Unknown => 4,
        }
    }
}

/// Feed counters. Every field only grows, except the state and issue.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Connection attempts (TCP/WebSocket opens tried).
    pub connect_attempts: AtomicU64,
    /// Sessions that reached `auth_success`.
    pub authenticated: AtomicU64,
    /// Reconnects (sessions after the first).
    pub reconnects: AtomicU64,
    /// Frames read from the socket.
    pub frames_received: AtomicU64,
    /// Bytes of frames read.
    pub bytes_received: AtomicU64,
    /// Frames dropped because the normalization queue was full.
    pub frames_dropped_queue_full: AtomicU64,
    /// Frames that found the normalization queue full and waited for room
    /// (and were then queued or dropped).
    pub queue_waits: AtomicU64,
    /// Time the reader spent waiting for room, in microseconds.
    pub queue_wait_micros: AtomicU64,
    /// Frames refused for their size (the connection is then replaced).
    pub frames_dropped_oversize: AtomicU64,
    /// Binary frames that were not UTF-8 (dropped).
    pub frames_dropped_binary: AtomicU64,
    /// Subscription acks (`success`) received.
    pub subscribe_acks: AtomicU64,
    /// `max_connections` statuses received.
    pub max_connections: AtomicU64,
    /// `slow_consumer` statuses received.
    pub slow_consumer: AtomicU64,
    /// `force_disconnect` statuses received.
    pub force_disconnect: AtomicU64,
    /// `error` statuses received.
    pub status_errors: AtomicU64,
    state: AtomicU8,
    issue: Mutex<Option<String>>,
}

/// Increments a counter by one.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl FeedStats {
    /// The current state.
    pub fn state(&self) -> FeedState {
        FeedState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Sets the state; `issue` explains a non-streaming state (kept until
    /// streaming resumes).
    pub fn set_state(&self, state: FeedState, issue: Option<String>) {
        self.state.store(state.as_u8(), Ordering::Relaxed);
        if let Ok(mut slot) = self.issue.lock() {
            if state == FeedState::Streaming {
                *slot = None;
            } else if issue.is_some() {
                *slot = issue;
            }
        }
    }

    /// Why the feed is not streaming, if it said.
    pub fn issue(&self) -> Option<String> {
        self.issue.lock().ok().and_then(|s| s.clone())
    }

    /// Whether data is flowing.
    pub fn is_streaming(&self) -> bool {
        self.state() == FeedState::Streaming
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
