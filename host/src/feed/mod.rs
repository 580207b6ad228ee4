//! The market-data feed: the Massive WebSocket client ([`FeedClient`]),
//! its protocol messages and counters.
//!
//! The client's only output is a bounded queue of raw [`Frame`]s; the
//! pipeline ([`crate::pipeline`]) normalizes them on its own thread.

mod client;
pub mod protocol;
mod stats;

pub use client::{FeedClient, FeedError, Frame, Timing, DEFAULT_QUEUE_WAIT};
pub use stats::{FeedState, FeedStats};
