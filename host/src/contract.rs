//! The contract's constants, spelled once: the two plugin kinds
//! ([`PluginKind`]), the WIT package and the versions this host accepts,
//! the metrics every health plugin must report, and the health-event
//! fields the host owns. The prose behind them is in
//! `docs/contract.md`; the plugin interface itself is `wit/tickstock.wit`.

use std::fmt;
use std::str::FromStr;

/// The WIT package every plugin is built against.
pub const WIT_PACKAGE: &str = "tickstock:plugins";
/// The contract version this host was built from (`wit/tickstock.wit`).
pub const WIT_VERSION: &str = "1.1.0";
/// The major version this host accepts; any `1.x.y` works.
pub const WIT_MAJOR: u64 = 1;
/// Human-readable form of the accepted range, used in errors and `--help`.
pub const WIT_ACCEPTED: &str = ">=1.0.0, <2.0.0";

/// The metrics every health report carries, as numbers: existing consumers
/// of `PREFIX:streaming:health` read them.
pub const REQUIRED_METRICS: [&str; 4] = [
    "active_symbols",
    "ticks_per_second",
    "patterns_detected",
    "indicators_calculated",
];

/// Fields of the health object that the host writes; a plugin metric with
/// one of these names is refused by the conformance check and never
/// overrides the host's value.
pub const HOST_HEALTH_FIELDS: [&str; 4] = ["session_id", "status", "timestamp", REASON_FIELD];

/// The health object's field for why the status is not `healthy`.
pub const REASON_FIELD: &str = "reason";

/// The default prefix of every channel name.
pub const DEFAULT_CHANNEL_PREFIX: &str = "tickstock";

/// Which world a component implements.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// World `normalizer`: Massive frames in, ticks out.
    Normalizer,
    /// World `health`: ticks in, health reports out.
    Health,
}

impl PluginKind {
    /// Both kinds, in a stable order.
    pub const ALL: [PluginKind; 2] = [PluginKind::Normalizer, PluginKind::Health];

    /// `normalizer` or `health`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Normalizer => "normalizer",
            PluginKind::Health => "health",
        }
    }

    /// The interface this kind exports, without version
    /// (`tickstock:plugins/normalize`).
    pub fn export_interface(self) -> &'static str {
        match self {
            PluginKind::Normalizer => "tickstock:plugins/normalize",
            PluginKind::Health => "tickstock:plugins/health-metrics",
        }
    }

    /// The kind whose interface is `interface` (without version), if any.
    pub fn from_interface(interface: &str) -> Option<PluginKind> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.export_interface() == interface)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PluginKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normalizer" => Ok(PluginKind::Normalizer),
            "health" => Ok(PluginKind::Health),
            other => Err(format!(
                "unknown plugin kind {other:?}: expected \"normalizer\" or \"health\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constants follow the WIT file the plugins are built from.
    #[test]
    fn wit_version_matches_the_wit_file() {
        let wit = include_str!("../../wit/tickstock.wit");
        let line = format!("package {WIT_PACKAGE}@{WIT_VERSION};");
        assert!(
            wit.lines().any(|l| l.trim() == line),
            "wit/tickstock.wit does not declare {line}"
        );
        let major: u64 = WIT_VERSION.split('.').next().unwrap().parse().unwrap();
        assert_eq!(major, WIT_MAJOR);
        assert!(WIT_ACCEPTED.contains(&format!(">={WIT_MAJOR}.0.0")));
    }
}
