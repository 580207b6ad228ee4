//! Channel names: the one place they are spelled. Every name starts with
//! the configured prefix (default `tickstock`).

/// The channel names for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    prefix: String,
}

impl Channels {
    /// Names under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Channels {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `PREFIX:market:ticks`: one `market_tick` per message (contract §1).
    pub fn ticks(&self) -> String {
        format!("{}:market:ticks", self.prefix)
    }

    /// `PREFIX:streaming:session_started` (contract §2).
    pub fn session_started(&self) -> String {
        format!("{}:streaming:session_started", self.prefix)
    }

    /// `PREFIX:streaming:session_stopped` (contract §2).
    pub fn session_stopped(&self) -> String {
        format!("{}:streaming:session_stopped", self.prefix)
    }

    /// `PREFIX:streaming:health` (contract §3).
    pub fn health(&self) -> String {
        format!("{}:streaming:health", self.prefix)
    }

    /// `PREFIX:feed`: feed connection events (TickStock addition).
    pub fn feed(&self) -> String {
        format!("{}:feed", self.prefix)
    }

    /// `PREFIX:plugins`: plugin install / refusal / rollback events.
    pub fn plugins(&self) -> String {
        format!("{}:plugins", self.prefix)
    }

    /// `PREFIX:deadletter`: frames a normalizer failed on.
    pub fn deadletter(&self) -> String {
        format!("{}:deadletter", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_follow_the_contract() {
        let c = super::Channels::new("tickstock");
        assert_eq!(c.ticks(), "tickstock:market:ticks");
        assert_eq!(c.session_started(), "tickstock:streaming:session_started");
        assert_eq!(c.session_stopped(), "tickstock:streaming:session_stopped");
        assert_eq!(c.health(), "tickstock:streaming:health");
    }
}
