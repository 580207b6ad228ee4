//! Reconnect delays: exponential with jitter, reset only after a stable
//! connection. The feed uses Massive's official clients' schedule (0.5 s
//! start, x1.5, 60 s cap); the Redis bus a shorter one of its own.

use std::time::Duration;

use rand::Rng;

/// Backoff settings.
#[derive(Debug, Clone, Copy)]
pub struct BackoffPolicy {
    /// First delay.
    pub initial: Duration,
    /// Growth per attempt.
    pub factor: f64,
    /// Largest delay.
    pub max: Duration,
    /// Relative jitter: each delay is scaled by a random factor in
    /// `[1 - jitter, 1 + jitter]`.
    pub jitter: f64,
    /// A connection that lasted this long resets the backoff.
    pub stable_after: Duration,
    /// Smallest delay after `max_connections` (someone else took the key).
    pub max_connections_floor: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_millis(500),
            factor: 1.5,
            max: Duration::from_secs(60),
            jitter: 0.2,
            stable_after: Duration::from_secs(30),
            max_connections_floor: Duration::from_secs(60),
        }
    }
}

/// The state of the backoff between attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    next: Duration,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            next: policy.initial,
            policy,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// Call after a connection ends, with how long it was up. Returns the
    /// delay before the next attempt. Only a connection that stayed up for
    /// `stable_after` resets the sequence.
    pub fn after_connection(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.policy.stable_after {
            self.next = self.policy.initial;
        }
        self.step()
    }

    /// The delay after `max_connections`: at least the floor.
    pub fn after_eviction(&mut self) -> Duration {
        self.step().max(self.policy.max_connections_floor)
    }

    /// The next delay (with jitter), and grows the one after.
    pub fn step(&mut self) -> Duration {
        let base = self.next;
        self.next = self.next.mul_f64(self.policy.factor).min(self.policy.max);
        let j = self.policy.jitter.clamp(0.0, 1.0);
        let scale = if j > 0.0 {
            rand::rng().random_range(1.0 - j..=1.0 + j)
        } else {
            1.0
        };
        base.mul_f64(scale).min(self.policy.max.mul_f64(1.0 + j))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> BackoffPolicy {
        BackoffPolicy {
            jitter: 0.0,
            ..Default::default()
        }
    }

    #[test]
    fn grows_by_half_and_caps() {
        let mut b = Backoff::new(no_jitter());
        let delays: Vec<u128> = (0..4).map(|_| b.step().as_millis()).collect();
        assert_eq!(delays, vec![500, 750, 1125, 1687]);
        for _ in 0..30 {
            b.step();
        }
        assert_eq!(b.step(), Duration::from_secs(60));
    }

    #[test]
    fn only_a_stable_connection_resets() {
        let mut b = Backoff::new(no_jitter());
        b.step();
        b.step();
        // A drop right after connecting keeps growing.
        assert_eq!(
            b.after_connection(Duration::from_millis(100)).as_millis(),
            1125
        );
        assert_eq!(b.after_connection(Duration::from_secs(31)).as_millis(), 500);
    }

    #[test]
    fn eviction_waits_long() {
        let mut b = Backoff::new(no_jitter());
        assert!(b.after_eviction() >= Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let mut b = Backoff::new(BackoffPolicy::default());
        for _ in 0..100 {
            let d = b.step();
            assert!(
                d >= Duration::from_millis(400) && d <= Duration::from_secs(72),
                "{d:?}"
            );
        }
    }
}
