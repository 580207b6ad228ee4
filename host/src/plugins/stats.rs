//! Per-plugin call counters and a latency histogram, recorded by every
//! call and read by metrics, the dashboard and automatic rollback.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (the last bucket is
/// everything above).
pub const BUCKETS_US: [u64; 14] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
];

/// Counters of one plugin instance (one version).
#[derive(Debug, Default)]
pub struct CallStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls that failed (trap, deadline, memory).
    pub errors: AtomicU64,
    /// Deadline failures among the errors.
    pub deadlines: AtomicU64,
    /// Results refused for their size (a failure too).
    pub oversized: AtomicU64,
    /// Log lines dropped by the per-call limit.
    pub logs_dropped: AtomicU64,
    /// Sum of call durations, nanoseconds (in microseconds a call of
    /// 1.9 µs would count as 1: most calls take a few).
    pub total_ns: AtomicU64,
    /// Calls per latency bucket ([`BUCKETS_US`], plus one overflow bucket).
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
}

impl CallStats {
    /// Records one call.
    pub fn record(&self, took: Duration, failed: bool, deadline: bool) {
        let ns = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if deadline {
            self.deadlines.fetch_add(1, Ordering::Relaxed);
        }
        // On nanoseconds, so that a call of 5.9 µs is not counted in the
        // 5 µs bucket.
        let slot = BUCKETS_US
            .iter()
            .position(|b| ns <= b * 1_000)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Calls per bucket (not cumulative).
    pub fn buckets(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// The latency at quantile `q` (0..=1), as the upper bound of its bucket,
    /// in milliseconds; `None` before any call.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let buckets = self.buckets();
        let total: u64 = buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = BUCKETS_US
                    .get(i)
                    .copied()
                    .unwrap_or(BUCKETS_US[BUCKETS_US.len() - 1] * 2);
                return Some(bound as f64 / 1000.0);
            }
        }
        None
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_buckets() {
        let s = CallStats::default();
        assert_eq!(s.quantile_ms(0.99), None);
        for _ in 0..99 {
            s.record(Duration::from_micros(40), false, false);
        }
        s.record(Duration::from_millis(20), true, true);
        assert_eq!(s.quantile_ms(0.5), Some(0.05));
        assert_eq!(s.quantile_ms(0.99), Some(0.05));
        assert_eq!(s.quantile_ms(1.0), Some(25.0));
        assert_eq!(CallStats::get(&s.errors), 1);
    }

    #[test]
    fn call_time_is_summed_below_the_microsecond() {
        let s = CallStats::default();
        for _ in 0..10 {
            s.record(Duration::from_nanos(1_900), false, false);
        }
        assert_eq!(CallStats::get(&s.total_ns), 19_000);
        // 5.9 µs is above the 5 µs bucket.
        s.record(Duration::from_nanos(5_900), false, false);
        assert_eq!(s.buckets()[..2], [10, 1]);
    }
}
