//! The two plugin kinds and the contract versions this host accepts.

use std::fmt;
use std::str::FromStr;

/// The WIT package every plugin is built against.
pub const WIT_PACKAGE: &str = "tickstock:plugins";
/// The contract version this host was built from (`wit/tickstock.wit`).
pub const WIT_VERSION: &str = "1.0.0";
/// The major version this host accepts; any `1.x.y` works.
pub const WIT_MAJOR: u64 = 1;
/// Human-readable form of the accepted range, used in errors and `--help`.
pub const WIT_ACCEPTED: &str = ">=1.0.0, <2.0.0";

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
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
