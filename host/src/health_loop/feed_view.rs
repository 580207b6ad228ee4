//! What the health loop knows about the feed: its counters when the feed
//! runs in this process, or the ingest role's latest `PREFIX:feed` event
//! when it runs elsewhere (too old an event means the ingest role is gone).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::events::FeedStatus;
use crate::feed::FeedStats;

/// Feed status older than this means the ingest side is gone.
const FEED_STATUS_STALE: Duration = Duration::from_secs(15);

/// What the health loop knows about the feed.
pub enum FeedView {
    /// The feed runs in this process (`run`).
    Local(Arc<FeedStats>),
    /// Learned from `PREFIX:feed` events.
    Remote(Mutex<Option<(Instant, FeedStatus)>>),
}

/// The feed's part of a health report.
pub struct FeedHealth {
    /// Whether ticks are flowing.
    pub connected: bool,
    /// Frames dropped since start.
    pub frames_dropped: u64,
    /// Why it is not streaming, when it is not.
    pub issue: Option<String>,
}

impl FeedView {
    /// A view of a feed in another process, learned from its events.
    pub fn remote() -> FeedView {
        FeedView::Remote(Mutex::new(None))
    }

    /// Records a `PREFIX:feed` event (ignored for a local feed).
    pub fn note(&self, status: FeedStatus) {
        if let FeedView::Remote(slot) = self {
            if let Ok(mut slot) = slot.lock() {
                *slot = Some((Instant::now(), status));
            }
        }
    }

    /// The feed's state now.
    pub fn health(&self) -> FeedHealth {
        match self {
            FeedView::Local(f) => FeedHealth {
                connected: f.is_streaming(),
                frames_dropped: FeedStats::get(&f.frames_dropped_queue_full)
                    + FeedStats::get(&f.frames_dropped_oversize),
                issue: f.issue().filter(|_| !f.is_streaming()),
            },
            FeedView::Remote(slot) => match slot.lock().ok().and_then(|s| s.clone()) {
                Some((at, feed)) if at.elapsed() < FEED_STATUS_STALE => FeedHealth {
                    connected: feed.connected,
                    frames_dropped: feed.frames_dropped,
                    issue: feed.issue.filter(|_| !feed.connected),
                },
                Some((at, feed)) => FeedHealth {
                    connected: false,
                    frames_dropped: feed.frames_dropped,
                    issue: Some(format!(
                        "no feed status from the ingest role for {}s",
                        at.elapsed().as_secs()
                    )),
                },
                None => FeedHealth {
                    connected: false,
                    frames_dropped: 0,
                    issue: Some("no feed status from the ingest role yet".into()),
                },
            },
        }
    }
}
