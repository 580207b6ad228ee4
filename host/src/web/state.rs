//! The dashboard role's state: the latest session, health, feed and plugin
//! events from the bus, and the status API document built from them
//! (`GET /streaming/api/status`, described in `docs/contract.md`).
//!
//! Session and health events are read in either shape (nested under
//! `session` / `health`, or flat): older producers published them flat,
//! and a consumer that reads only one shape shows no session at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::activity::{SymbolBoard, MAX_SYMBOLS, MAX_SYMBOL_BYTES};
use crate::bus::{Bus, Channels};
use crate::contract::{HOST_HEALTH_FIELDS, REQUIRED_METRICS};
use crate::events::{health_object, session_object};

/// What one event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `session_started`.
    SessionStarted,
    /// `session_stopped`.
    SessionStopped,
    /// `streaming_health`.
    Health,
    /// `feed_status`.
    Feed,
    /// A plugin event.
    Plugin,
}

/// Counts of events received, by kind.
#[derive(Debug, Default)]
pub struct EventCounts {
    /// All valid events.
    pub events: AtomicU64,
    /// Session events.
    pub session: AtomicU64,
    /// Health events.
    pub health: AtomicU64,
    /// Feed events.
    pub feed: AtomicU64,
    /// Plugin events.
    pub plugins: AtomicU64,
    /// Payloads that were not valid JSON objects.
    pub invalid: AtomicU64,
}

#[derive(Default)]
struct Latest {
    session: Option<Map<String, Value>>,
    session_active: bool,
    health: Option<Map<String, Value>>,
    health_at: Option<Instant>,
    feed: Option<Value>,
    /// The latest `plugin_status` per kind.
    plugin_status: Map<String, Value>,
    /// Install / refusal / rollback events, newest last.
    plugins: Vec<Value>,
    /// The latest shadow report per kind.
    plugin_shadow: Map<String, Value>,
    /// What the event log shows, newest last: session starts and stops,
    /// plugin events (but statuses and running shadow reports), and
    /// changes of health status and feed state.
    recent: std::collections::VecDeque<Value>,
    /// The most active symbols with their last price.
    top_symbols: Value,
    last_event_at: Option<String>,
}

impl Latest {
    /// A session event; `false` if it holds no session. A stop of another
    /// session than the current one changes nothing.
    fn session_event(&mut self, started: bool, event: &Value) -> bool {
        let Some(session) = session_object(event) else {
            return false;
        };
        let same =
            self.session.as_ref().and_then(|s| s.get("session_id")) == session.get("session_id");
        if started || same || self.session.is_none() {
            self.session_active = started;
            self.session = Some(session);
            if started {
                self.health = None;
                self.health_at = None;
            }
        }
        true
    }

    /// A health event; `false` if it holds no health object. The session it
    /// names is adopted when this state has missed its start (it started
    /// late or restarted), unless that session was seen to stop.
    fn health_event(&mut self, event: &Value) -> bool {
        let Some(mut health) = health_object(event) else {
            return false;
        };
        if let Some(Value::Object(session)) = event.get("session") {
            let known = self.session.as_ref().and_then(|s| s.get("session_id"))
                == session.get("session_id");
            if !known {
                self.session = Some(session.clone());
                self.session_active = true;
            }
        }
        // Older dashboards read `data_flow.ticks_per_second`.
        let tps = health
            .get("ticks_per_second")
            .cloned()
            .unwrap_or(Value::from(0.0));
        let mut data_flow = match health.remove("data_flow") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        data_flow.insert("ticks_per_second".into(), tps);
        health.insert("data_flow".into(), Value::Object(data_flow));
        self.health = Some(health);
        self.health_at = Some(Instant::now());
        true
    }

    /// Keeps `event` for the event log (bounded).
    fn remember(&mut self, kind: EventKind, event: &Value) {
        self.recent.push_back(json!({
            "kind": kind_label(kind),
            "event": event,
            "at": crate::events::health_time(chrono::Utc::now()),
        }));
        while self.recent.len() > RECENT_KEPT {
            self.recent.pop_front();
        }
    }

    /// A plugin event: the latest status and shadow report per kind, the
    /// last installs, refusals and rollbacks. Returns whether the event
    /// belongs in the event log: not a status, not a running shadow's
    /// periodic report (its start and end are).
    fn plugin_event(&mut self, event: &Value) -> bool {
        // Maps keyed by kind take only the two kinds there are, so a stray
        // publisher cannot grow them.
        let known_kind = event["kind"]
            .as_str()
            .filter(|k| k.parse::<crate::contract::PluginKind>().is_ok());
        match event["type"].as_str() {
            Some("plugin_status") => {
                if let Some(kind) = known_kind {
                    self.plugin_status.insert(kind.to_string(), event.clone());
                }
                false
            }
            Some("plugin_shadow") => {
                if let Some(kind) = known_kind {
                    self.plugin_shadow.insert(kind.to_string(), event.clone());
                }
                let started = event["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("shadow started"));
                started || !event["report"]["ended_at"].is_null()
            }
            _ => {
                self.plugins.push(event.clone());
                if self.plugins.len() > PLUGIN_EVENTS_KEPT {
                    self.plugins.remove(0);
                }
                true
            }
        }
    }
}

/// The dashboard's view of the system.
pub struct DashboardState {
    latest: RwLock<Latest>,
    /// Health older than this makes the status `offline`.
    fresh_for: Duration,
    /// Event counters.
    pub counts: EventCounts,
    events: broadcast::Sender<Value>,
}

/// Plugin events kept for the page.
const PLUGIN_EVENTS_KEPT: usize = 50;
/// Entries of the event log a page gets with its snapshot.
const RECENT_KEPT: usize = 100;

impl DashboardState {
    /// A state whose health counts as fresh for three health intervals.
    pub fn new(health_interval: Duration) -> Arc<Self> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(DashboardState {
            latest: RwLock::new(Latest::default()),
            fresh_for: (health_interval * 3).max(Duration::from_secs(1)),
            counts: EventCounts::default(),
            events,
        })
    }

    /// Every applied event, as `{"channel_kind": ..., "event": ...}`, for
    /// live pushes.
    pub fn events(&self) -> broadcast::Receiver<Value> {
        self.events.subscribe()
    }

    /// Applies one event from the bus, and pushes it (with the status it
    /// leads to) to the page's clients.
    pub fn apply(&self, kind: EventKind, payload: &str) {
        let event = match serde_json::from_str::<Value>(payload) {
            Ok(event) if event.is_object() => event,
            _ => {
                self.counts.invalid.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let Ok(mut latest) = self.latest.write() else {
            return;
        };
        let applied = match kind {
            EventKind::SessionStarted | EventKind::SessionStopped => {
                latest.session_event(kind == EventKind::SessionStarted, &event)
            }
            EventKind::Health => {
                let before = latest.health.as_ref().map(|h| h["status"].clone());
                let applied = latest.health_event(&event);
                let now = latest.health.as_ref().map(|h| h["status"].clone());
                if applied && before.is_some() && before != now {
                    latest.remember(kind, &event);
                }
                applied
            }
            EventKind::Feed => {
                let before = latest.feed.as_ref().map(|f| f["state"].clone());
                if before.as_ref() != Some(&event["state"]) {
                    latest.remember(kind, &event);
                }
                latest.feed = Some(event.clone());
                true
            }
            EventKind::Plugin => {
                if latest.plugin_event(&event) {
                    latest.remember(kind, &event);
                }
                true
            }
        };
        if applied && matches!(kind, EventKind::SessionStarted | EventKind::SessionStopped) {
            latest.remember(kind, &event);
        }
        if !applied {
            self.counts.invalid.fetch_add(1, Ordering::Relaxed);
            return;
        }
        latest.last_event_at = Some(crate::events::health_time(chrono::Utc::now()));
        let online = self.online(&latest);
        drop(latest);
        let counter = match kind {
            EventKind::SessionStarted | EventKind::SessionStopped => &self.counts.session,
            EventKind::Health => &self.counts.health,
            EventKind::Feed => &self.counts.feed,
            EventKind::Plugin => &self.counts.plugins,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.counts.events.fetch_add(1, Ordering::Relaxed);
        let status = if online { "online" } else { "offline" };
        let _ = self
            .events
            .send(json!({"kind": kind_label(kind), "event": event, "api_status": status}));
    }

    /// The status API's rule: a session is active and its health is fresh.
    fn online(&self, latest: &Latest) -> bool {
        let fresh = latest
            .health_at
            .is_some_and(|at| at.elapsed() <= self.fresh_for);
        latest.session_active && fresh
    }

    /// The `/streaming/api/status` document.
    pub fn status(&self) -> Value {
        let Ok(latest) = self.latest.read() else {
            return json!({"status": "offline", "session": null, "health": null, "subscriber_stats": {}});
        };
        let online = self.online(&latest);
        let c = &self.counts;
        json!({
            "status": if online { "online" } else { "offline" },
            "session": latest.session,
            "health": latest.health,
            "health_age_seconds": latest.health_at.map(|at| (at.elapsed().as_secs_f64() * 10.0).round() / 10.0),
            "feed": latest.feed,
            "subscriber_stats": {
                "events_received": c.events.load(Ordering::Relaxed),
                "session_events": c.session.load(Ordering::Relaxed),
                "health_events": c.health.load(Ordering::Relaxed),
                "feed_events": c.feed.load(Ordering::Relaxed),
                "plugin_events": c.plugins.load(Ordering::Relaxed),
                "invalid_events": c.invalid.load(Ordering::Relaxed),
                "last_event_at": latest.last_event_at,
            },
        })
    }

    /// Everything the page shows, for a client that just connected (or
    /// fell behind: it gets the latest state, not a backlog).
    pub fn snapshot(&self) -> Value {
        let (plugins, plugin_status, plugin_shadow, recent, top) = self
            .latest
            .read()
            .map(|l| {
                (
                    l.plugins.clone(),
                    l.plugin_status.clone(),
                    l.plugin_shadow.clone(),
                    l.recent.iter().cloned().collect::<Vec<_>>(),
                    l.top_symbols.clone(),
                )
            })
            .unwrap_or_default();
        json!({
            "kind": "snapshot",
            "status": self.status(),
            "plugin_events": plugins,
            "plugin_status": plugin_status,
            "plugin_shadow": plugin_shadow,
            "recent_events": recent,
            "top_symbols": top,
            "contract": {
                "required_metrics": REQUIRED_METRICS,
                "host_fields": HOST_HEALTH_FIELDS,
            },
        })
    }

    /// Replaces the most-active-symbols list and pushes it.
    pub fn set_top_symbols(&self, top: Value) {
        if let Ok(mut latest) = self.latest.write() {
            latest.top_symbols = top.clone();
        }
        let _ = self
            .events
            .send(json!({"kind": "top_symbols", "event": top}));
    }
}

fn kind_label(kind: EventKind) -> &'static str {
    match kind {
        EventKind::SessionStarted => "session_started",
        EventKind::SessionStopped => "session_stopped",
        EventKind::Health => "health",
        EventKind::Feed => "feed",
        EventKind::Plugin => "plugin",
    }
}

/// Tick messages the most-active-symbols tracker may have waiting (it only
/// ranks symbols: falling behind costs accuracy, not correctness).
const TICKS_FOLLOWED: usize = 8_192;

/// The activity window is two halves of this length.
const ACTIVITY_HALF: Duration = Duration::from_secs(30);

/// Tracks per-symbol activity from `PREFIX:market:ticks` and publishes the
/// most active symbols (ticks in the last 30-60 s, last price) every second.
fn follow_ticks(bus: &Bus, state: Arc<DashboardState>, cancel: CancellationToken) {
    let mut sub = bus.subscribe(vec![bus.channels().ticks()], TICKS_FOLLOWED);
    tokio::spawn(async move {
        let mut board = SymbolBoard::default();
        let mut untracked_logged = 0;
        let mut rotated = Instant::now();
        let mut publish = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = publish.tick() => {
                    if rotated.elapsed() >= ACTIVITY_HALF {
                        // At most one warning per window.
                        if board.untracked > untracked_logged {
                            tracing::warn!(untracked_ticks = board.untracked, max_symbols = MAX_SYMBOLS, max_symbol_bytes = MAX_SYMBOL_BYTES, "ticks of symbols the most-active board does not track (too many, or too long)");
                            untracked_logged = board.untracked;
                        }
                        board.rotate();
                        rotated = Instant::now();
                    }
                    state.set_top_symbols(board.top());
                }
                m = sub.recv() => {
                    let Some(m) = m else { return };
                    board.record(&m.payload);
                }
            }
        }
    });
}

/// Keeps `state` up to date from the bus until cancelled.
pub fn follow(bus: &Bus, state: Arc<DashboardState>, cancel: CancellationToken) {
    follow_ticks(bus, state.clone(), cancel.clone());
    let c: Channels = bus.channels().clone();
    let table = [
        (c.session_started(), EventKind::SessionStarted),
        (c.session_stopped(), EventKind::SessionStopped),
        (c.health(), EventKind::Health),
        (c.feed(), EventKind::Feed),
        (c.plugins(), EventKind::Plugin),
    ];
    let mut sub = bus.subscribe(table.iter().map(|(n, _)| n.clone()).collect(), 4_096);
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = cancel.cancelled() => return,
                m = sub.recv() => match m { Some(m) => m, None => return },
            };
            if let Some((_, kind)) = table.iter().find(|(n, _)| **n == *message.channel) {
                state.apply(*kind, &message.payload);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_only_with_an_active_session_and_fresh_health() {
        let s = DashboardState::new(Duration::from_secs(10));
        assert_eq!(s.status()["status"], "offline");
        assert!(s.status()["session"].is_null());
        s.apply(EventKind::SessionStarted, r#"{"type":"streaming_session_started","session":{"session_id":"a","universe":"u","symbol_count":2,"start_time":"t","status":"active"},"timestamp":"t"}"#);
        assert_eq!(s.status()["status"], "offline", "no health yet");
        s.apply(EventKind::Health, r#"{"type":"streaming_health","status":"healthy","session_id":"a","ticks_per_second":18.2,"active_symbols":60}"#);
        let st = s.status();
        assert_eq!(st["status"], "online");
        assert_eq!(st["health"]["data_flow"]["ticks_per_second"], 18.2);
        assert_eq!(st["session"]["universe"], "u");
        assert_eq!(st["subscriber_stats"]["events_received"], 2);
        s.apply(EventKind::SessionStopped, r#"{"type":"streaming_session_stopped","session":{"session_id":"a","status":"stopped"}}"#);
        assert_eq!(s.status()["status"], "offline");
        s.apply(EventKind::Health, "not json");
        assert_eq!(s.status()["subscriber_stats"]["invalid_events"], 1);
    }

    const HEALTH_OF_B: &str = r#"{"type":"streaming_health","health":{"status":"healthy","session_id":"b","ticks_per_second":1.0,"active_symbols":1},"session":{"session_id":"b","universe":"u","symbol_count":2,"start_time":"t","status":"active"},"timestamp":"t"}"#;

    #[test]
    fn a_late_dashboard_learns_the_session_from_health() {
        let s = DashboardState::new(Duration::from_secs(10));
        // It never saw session_started.
        s.apply(EventKind::Health, HEALTH_OF_B);
        let st = s.status();
        assert_eq!(st["status"], "online", "{st}");
        assert_eq!(st["session"]["session_id"], "b");
        assert_eq!(st["session"]["universe"], "u");
    }

    #[test]
    fn a_stopped_session_is_not_revived_by_a_late_health_event() {
        let s = DashboardState::new(Duration::from_secs(10));
        s.apply(EventKind::Health, HEALTH_OF_B);
        s.apply(EventKind::SessionStopped, r#"{"type":"streaming_session_stopped","session":{"session_id":"b","status":"stopped"}}"#);
        s.apply(EventKind::Health, HEALTH_OF_B);
        assert_eq!(s.status()["status"], "offline");
    }

    #[test]
    fn a_late_stop_of_an_old_session_leaves_the_current_one_online() {
        let s = DashboardState::new(Duration::from_secs(10));
        s.apply(EventKind::SessionStarted, r#"{"type":"streaming_session_started","session":{"session_id":"b","universe":"u","symbol_count":2,"start_time":"t","status":"active"},"timestamp":"t"}"#);
        s.apply(EventKind::Health, HEALTH_OF_B);
        s.apply(EventKind::SessionStopped, r#"{"type":"streaming_session_stopped","session":{"session_id":"a","status":"stopped"}}"#);
        let st = s.status();
        assert_eq!(st["status"], "online", "{st}");
        assert_eq!(st["session"]["session_id"], "b");
    }

    #[test]
    fn stale_health_is_offline() {
        // Fresh for three intervals, at least a second.
        let s = DashboardState::new(Duration::from_millis(100));
        s.apply(EventKind::Health, HEALTH_OF_B);
        assert_eq!(s.status()["status"], "online");
        std::thread::sleep(Duration::from_millis(1_100));
        let st = s.status();
        assert_eq!(st["status"], "offline", "{st}");
        assert!(st["health_age_seconds"].as_f64().unwrap() >= 1.0);
        // The session is still shown; only its health is stale.
        assert_eq!(st["session"]["session_id"], "b");
    }

    #[test]
    fn the_event_log_keeps_changes_not_repeats() {
        let s = DashboardState::new(Duration::from_secs(1));
        let started = r#"{"type":"streaming_session_started","session":{"session_id":"s1","status":"active"}}"#;
        s.apply(EventKind::SessionStarted, started);
        for state in ["streaming", "streaming", "reconnecting", "streaming"] {
            s.apply(
                EventKind::Feed,
                &format!(r#"{{"type":"feed_status","state":"{state}"}}"#),
            );
        }
        for status in ["healthy", "healthy", "degraded"] {
            s.apply(
                EventKind::Health,
                &format!(r#"{{"type":"streaming_health","health":{{"status":"{status}"}}}}"#),
            );
        }
        s.apply(
            EventKind::Plugin,
            r#"{"type":"plugin_status","kind":"health"}"#,
        );
        s.apply(
            EventKind::Plugin,
            r#"{"type":"plugin_installed","kind":"health","version":"1.1.0"}"#,
        );
        let shadow = |message: &str, ended: &str| {
            format!(
                r#"{{"type":"plugin_shadow","kind":"normalizer","message":"{message}","report":{{"ended_at":{ended}}}}}"#
            )
        };
        s.apply(EventKind::Plugin, &shadow("shadow started: x", "null"));
        s.apply(EventKind::Plugin, &shadow("shadow running: x", "null"));
        s.apply(
            EventKind::Plugin,
            &shadow("shadow stopped: x", "\"2026-01-01\""),
        );
        let snapshot = s.snapshot();
        let kinds: Vec<String> = snapshot["recent_events"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["kind"].as_str().unwrap_or(""),
                    r["event"]["type"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "session_started streaming_session_started",
                "feed feed_status",
                "feed feed_status",
                "feed feed_status",
                "health streaming_health",
                "plugin plugin_installed",
                "plugin plugin_shadow",
                "plugin plugin_shadow",
            ]
        );
        assert_eq!(
            snapshot["plugin_shadow"]["normalizer"]["message"],
            "shadow stopped: x"
        );
    }

    #[test]
    fn plugin_status_is_kept_only_for_the_two_kinds() {
        let s = DashboardState::new(Duration::from_secs(10));
        for kind in ["normalizer", "health", "x1", "x2", "x3"] {
            s.apply(
                EventKind::Plugin,
                &format!(r#"{{"type":"plugin_status","kind":"{kind}"}}"#),
            );
        }
        let snapshot = s.snapshot();
        assert_eq!(snapshot["plugin_status"].as_object().unwrap().len(), 2);
    }
}
