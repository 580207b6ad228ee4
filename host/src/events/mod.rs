//! Every event TickStock publishes, as typed serde structs: the single
//! source of truth for their shapes. `docs/contract.md` describes them in
//! prose and `schemas/` as JSON Schemas; the end-to-end tests validate what
//! the host really publishes against those schemas.
//!
//! | channel (default prefix `tickstock`) | type | module |
//! |---|---|---|
//! | `tickstock:market:ticks` | `market_tick` (built by the normalizer plugin) | — |
//! | `tickstock:streaming:session_started` | [`SessionStarted`] | [`session`] |
//! | `tickstock:streaming:session_stopped` | [`SessionStopped`] | [`session`] |
//! | `tickstock:streaming:health` | [`HealthEvent`] | [`health`] |
//! | `tickstock:feed` | [`FeedStatus`] | [`feed`] |
//! | `tickstock:plugins` | [`PluginEvent`] | [`plugins`] |
//! | `tickstock:deadletter` | [`DeadLetter`] | [`deadletter`] |
//!
//! Two time formats, kept from the system TickStock replaces because its
//! consumers parse them: session times are RFC 3339 with microseconds and
//! `+00:00`; health (and TickStock-only) timestamps have milliseconds and `Z`.

pub mod deadletter;
pub mod feed;
pub mod health;
pub mod plugins;
pub mod session;

use chrono::{DateTime, SecondsFormat, Utc};

pub use deadletter::DeadLetter;
pub use feed::FeedStatus;
pub use health::{health_object, HealthEvent};
pub use plugins::{
    FleetApplied, PluginAbandoned, PluginEvent, PluginInstalled, PluginRefused, PluginRolledBack,
    PluginShadow, PluginStatus,
};
pub use session::{session_object, SessionStarted, SessionStopped, StartedSession, StoppedSession};

/// `2025-10-07T19:21:51.658768+00:00`
pub fn session_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// `2025-10-07T19:22:02.000Z`
pub fn health_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_formats_are_the_ones_consumers_parse() {
        let t = Utc.with_ymd_and_hms(2025, 10, 7, 19, 21, 51).unwrap()
            + chrono::Duration::microseconds(658_768);
        assert_eq!(session_time(t), "2025-10-07T19:21:51.658768+00:00");
        let t = Utc.with_ymd_and_hms(2025, 10, 7, 19, 22, 2).unwrap();
        assert_eq!(health_time(t), "2025-10-07T19:22:02.000Z");
    }
}
