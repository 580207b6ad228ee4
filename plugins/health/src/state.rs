//! The health plugin's state and its rules, as plain Rust with time passed
//! in, so every rule is unit-tested with exact clocks.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::{HealthReport, HealthStatus, HostState, Metric, MetricValue};

/// Tag written into exported state; `import` refuses any other.
pub const STATE_FORMAT: &str = "tickstock-health/1";

/// Silence (no tick while subscribed) longer than this is `degraded`.
pub const STALL_MS: i64 = 30_000;
/// Silence longer than this is `error`.
pub const DEAD_MS: i64 = 300_000;
/// Silence longer than this while the feed is down is `error`.
pub const FEED_DOWN_DEAD_MS: i64 = 60_000;
/// Window assumed for pruning before the host has asked for a report.
const DEFAULT_WINDOW_MS: i64 = 10_000;

/// Everything the plugin remembers. Serialized as JSON by [`Self::export`].
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthState {
    /// Arrival times (host ms) with the number of ticks that arrived then,
    /// oldest first; only the last window is kept.
    arrivals: VecDeque<(i64, u64)>,
    /// Each symbol's last arrival time; only the last window is kept.
    last_seen: HashMap<String, i64>,
    /// Ticks observed since the state began (carried across versions).
    total_ticks: u64,
    /// Host time of the first call that reached this state.
    started_ms: Option<i64>,
    /// Host time of the most recent tick.
    last_tick_ms: Option<i64>,
    /// Highest `ticks_per_second` reported so far.
    peak_tps: f64,
    /// The window of the last report (ms), used for pruning.
    window_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct Exported {
    format: String,
    state: HealthState,
}

impl HealthState {
    /// Records `symbols.len()` ticks that arrived at `now_ms`.
    pub fn observe(&mut self, symbols: &[&str], now_ms: i64) {
        self.started_ms.get_or_insert(now_ms);
        if symbols.is_empty() {
            return;
        }
        let n = symbols.len() as u64;
        match self.arrivals.back_mut() {
            Some((t, count)) if *t == now_ms => *count += n,
            _ => self.arrivals.push_back((now_ms, n)),
        }
        for symbol in symbols {
            match self.last_seen.get_mut(*symbol) {
                Some(seen) => *seen = now_ms,
                None => {
                    self.last_seen.insert((*symbol).to_string(), now_ms);
                }
            }
        }
        self.total_ticks += n;
        self.last_tick_ms = Some(now_ms);
        // Keep memory bounded even if the host never asks for a report.
        if self.arrivals.len() > 100_000 {
            self.prune(now_ms - self.prune_window());
        }
    }

    fn prune_window(&self) -> i64 {
        if self.window_ms > 0 {
            self.window_ms
        } else {
            DEFAULT_WINDOW_MS
        }
    }

    /// Forgets everything at or before `cutoff_ms`.
    fn prune(&mut self, cutoff_ms: i64) {
        while self.arrivals.front().is_some_and(|(t, _)| *t <= cutoff_ms) {
            self.arrivals.pop_front();
        }
        self.last_seen.retain(|_, seen| *seen > cutoff_ms);
    }

    /// Ticks per second and distinct active symbols over the `window_ms`
    /// before `now_ms` (the interval `(now - window, now]`). Before a whole
    /// window has passed since the state began, the rate is taken over the
    /// time actually observed (at least one second).
    pub fn window(&mut self, now_ms: i64, window_ms: i64) -> (f64, usize) {
        let window_ms = window_ms.max(1);
        self.window_ms = window_ms;
        let cutoff = now_ms - window_ms;
        self.prune(cutoff);
        let ticks: u64 = self
            .arrivals
            .iter()
            .filter(|(t, _)| *t <= now_ms)
            .map(|(_, n)| n)
            .sum();
        let active = self
            .last_seen
            .values()
            .filter(|seen| **seen <= now_ms)
            .count();
        let observed = now_ms - self.started_ms.unwrap_or(now_ms);
        let span_ms = if observed >= window_ms {
            window_ms
        } else {
            observed.max(1_000).min(window_ms)
        };
        (ticks as f64 * 1_000.0 / span_ms as f64, active)
    }

    /// The health report at `now_ms`: metrics, status and reason.
    pub fn report(&mut self, now_ms: i64, host: &HostState) -> HealthReport {
        self.started_ms.get_or_insert(now_ms);
        let window_ms = i64::try_from(host.window_ms).unwrap_or(i64::MAX).max(1);
        let (tps, active) = self.window(now_ms, window_ms);
        let tps = (tps * 100.0).round() / 100.0;
        self.peak_tps = self.peak_tps.max(tps);
        let window_ticks: u64 = self.arrivals.iter().map(|(_, n)| n).sum();
        let (status, reason) = self.status(now_ms, host);

        let mut metrics = vec![
            int("active_symbols", active as i64),
            float("ticks_per_second", tps),
            int("patterns_detected", 0),
            int("indicators_calculated", 0),
            int("total_ticks", self.total_ticks as i64),
            int("window_ticks", window_ticks as i64),
            float("window_seconds", window_ms as f64 / 1_000.0),
            int("subscribed_symbols", i64::from(host.subscribed_symbols)),
            float("peak_ticks_per_second", self.peak_tps),
        ];
        // scaffold: drop-begin
        if cfg!(feature = "test-next") {
            // The test-only 1.1.0 build's new metric.
            metrics.push(int("symbols_seen_total", self.last_seen.len() as i64));
        }
        // scaffold: drop-end
        if let Some(last) = self.last_tick_ms {
            metrics.push(float(
                "seconds_since_last_tick",
                ((now_ms - last).max(0) as f64 / 100.0).round() / 10.0,
            ));
        }
        HealthReport {
            status,
            reason,
            metrics,
        }
    }

    /// The status rule. `degraded` when the host reports trouble (bus down,
    /// feed down, drops, other issues) or when no tick has arrived for
    /// [`STALL_MS`] while subscribed; `error` when the silence reaches
    /// [`DEAD_MS`], or [`FEED_DOWN_DEAD_MS`] with the feed down. A session
    /// that has not yet had `STALL_MS` to receive its first tick is healthy.
    fn status(&self, now_ms: i64, host: &HostState) -> (HealthStatus, String) {
        let mut reasons: Vec<String> = Vec::new();
        let mut status = HealthStatus::Healthy;
        let mut worsen = |to: HealthStatus, why: String| {
            if rank(to) > rank(status) {
                status = to;
            }
            reasons.push(why);
        };
        if !host.bus_connected {
            worsen(HealthStatus::Degraded, "event bus unreachable".into());
        }
        if !host.feed_connected {
            worsen(HealthStatus::Degraded, "market feed disconnected".into());
        }
        if host.dropped_since_last_report > 0 {
            worsen(
                HealthStatus::Degraded,
                format!(
                    "{} ticks dropped since the last report",
                    host.dropped_since_last_report
                ),
            );
        }
        for issue in &host.issues {
            worsen(HealthStatus::Degraded, issue.clone());
        }
        if host.subscribed_symbols > 0 {
            let since = self.last_tick_ms.or(self.started_ms).unwrap_or(now_ms);
            let silence = now_ms - since;
            let what = if self.last_tick_ms.is_some() {
                "no ticks for"
            } else {
                "no ticks yet after"
            };
            let text = format!(
                "{what} {}s while subscribed to {} symbols",
                silence / 1_000,
                host.subscribed_symbols
            );
            if silence >= DEAD_MS || (!host.feed_connected && silence >= FEED_DOWN_DEAD_MS) {
                worsen(HealthStatus::Error, text);
            } else if silence >= STALL_MS {
                worsen(HealthStatus::Degraded, text);
            }
        }
        (status, clip_reason(reasons.join("; ")))
    }

    /// Serializes the state (JSON with a format tag).
    pub fn export(&self) -> Vec<u8> {
        let exported = Exported {
            format: STATE_FORMAT.to_string(),
            state: self.clone(),
        };
        serde_json::to_vec(&exported).unwrap_or_default()
    }

    /// Reads a state produced by [`Self::export`] of any version that writes
    /// [`STATE_FORMAT`].
    pub fn import(bytes: &[u8]) -> Result<Self, String> {
        let exported: Exported =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable state: {e}"))?;
        if exported.format != STATE_FORMAT {
            return Err(format!(
                "state format {:?} is not {STATE_FORMAT:?}",
                exported.format
            ));
        }
        Ok(exported.state)
    }
}

/// The longest reason reported; the host refuses a report whose reason is
/// over 4 KiB, and the host's own issues can be long.
pub const MAX_REASON_BYTES: usize = 1_024;

fn clip_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES - 3;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("...");
    }
    reason
}

fn rank(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Error => 2,
    }
}

fn int(name: &str, value: i64) -> Metric {
    Metric {
        name: name.to_string(),
        value: MetricValue::Integer(value),
    }
}

fn float(name: &str, value: f64) -> Metric {
    Metric {
        name: name.to_string(),
        value: MetricValue::Float(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reason_is_clipped_under_the_hosts_limit() {
        let host = HostState {
            window_ms: 10_000,
            subscribed_symbols: 0,
            feed_connected: false,
            bus_connected: true,
            dropped_since_last_report: 0,
            issues: (0..50).map(|_| "é".repeat(100)).collect(),
        };
        let report = HealthState::default().report(1_000, &host);
        assert!(
            report.reason.len() <= MAX_REASON_BYTES,
            "{}",
            report.reason.len()
        );
        assert!(report.reason.starts_with("market feed disconnected; é"));
        assert!(report.reason.ends_with("..."));
    }

    fn host(window_ms: u64, subscribed: u32) -> HostState {
        HostState {
            window_ms,
            subscribed_symbols: subscribed,
            feed_connected: true,
            bus_connected: true,
            dropped_since_last_report: 0,
            issues: Vec::new(),
        }
    }

    fn metric(report: &HealthReport, name: &str) -> MetricValue {
        report
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value.clone())
            .unwrap_or(MetricValue::Text("missing".into()))
    }

    #[test]
    fn rate_and_symbols_cover_only_the_window() {
        let mut s = HealthState::default();
        s.observe(&["OLD"; 50], 0);
        s.observe(&["A", "B"], 5_000);
        s.observe(&["A"; 10], 12_000);
        // Window (10s, 20s]: 10 ticks of one symbol; the state began at 0.
        let (tps, active) = s.window(20_000, 10_000);
        assert_eq!(active, 1);
        assert!((tps - 1.0).abs() < 1e-9, "{tps}");
    }

    #[test]
    fn stall_degrades_then_errors() {
        let mut s = HealthState::default();
        s.observe(&["A"], 0);
        assert_eq!(
            s.report(10_000, &host(10_000, 5)).status,
            HealthStatus::Healthy
        );
        let r = s.report(31_000, &host(10_000, 5));
        assert_eq!(r.status, HealthStatus::Degraded);
        assert!(r.reason.contains("no ticks for 31s"), "{}", r.reason);
        assert_eq!(
            s.report(301_000, &host(10_000, 5)).status,
            HealthStatus::Error
        );
        // Not subscribed: silence is expected.
        assert_eq!(
            s.report(400_000, &host(10_000, 0)).status,
            HealthStatus::Healthy
        );
    }

    #[test]
    fn host_trouble_is_reported() {
        let mut s = HealthState::default();
        s.observe(&["A"], 0);
        let mut h = host(10_000, 1);
        h.bus_connected = false;
        h.dropped_since_last_report = 7;
        let r = s.report(1_000, &h);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert!(r.reason.contains("event bus unreachable"));
        assert!(r.reason.contains("7 ticks dropped"));
    }

    #[test]
    fn export_import_round_trips_and_rejects_foreign_state() {
        let mut s = HealthState::default();
        s.observe(&["A", "B", "C"], 1_000);
        let copy = HealthState::import(&s.export()).unwrap();
        assert_eq!(copy, s);
        assert!(HealthState::import(b"{\"format\":\"other/9\",\"state\":{}}").is_err());
        assert!(HealthState::import(b"garbage").is_err());
    }

    #[test]
    fn report_carries_the_fields_consumers_read() {
        let mut s = HealthState::default();
        s.observe(&["A", "B"], 0);
        let r = s.report(2_000, &host(10_000, 2));
        assert_eq!(metric(&r, "active_symbols"), MetricValue::Integer(2));
        assert_eq!(metric(&r, "ticks_per_second"), MetricValue::Float(1.0));
        assert_eq!(metric(&r, "patterns_detected"), MetricValue::Integer(0));
        assert_eq!(metric(&r, "indicators_calculated"), MetricValue::Integer(0));
        assert_eq!(metric(&r, "total_ticks"), MetricValue::Integer(2));
    }
}
