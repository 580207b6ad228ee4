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

    /// `PREFIX:market:ticks`: one `market_tick` per message.
    pub fn ticks(&self) -> String {
        format!("{}:market:ticks", self.prefix)
    }

    /// `PREFIX:streaming:session_started`.
    pub fn session_started(&self) -> String {
        format!("{}:streaming:session_started", self.prefix)
    }

    /// `PREFIX:streaming:session_stopped`.
    pub fn session_stopped(&self) -> String {
        format!("{}:streaming:session_stopped", self.prefix)
    }

    /// `PREFIX:streaming:health`: one event per interval.
    pub fn health(&self) -> String {
        format!("{}:streaming:health", self.prefix)
    }

    /// `PREFIX:feed`: the feed's state.
    pub fn feed(&self) -> String {
        format!("{}:feed", self.prefix)
    }

    /// `PREFIX:plugins`: plugin status, installs, refusals, rollbacks.
    pub fn plugins(&self) -> String {
        format!("{}:plugins", self.prefix)
    }

    /// `PREFIX:deadletter`: frames a normalizer failed on.
    pub fn deadletter(&self) -> String {
        format!("{}:deadletter", self.prefix)
    }

    /// `PREFIX:control`: signed fleet commands (install, rollback, shadow)
    /// for every instance under this prefix.
    pub fn control(&self) -> String {
        format!("{}:control", self.prefix)
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
