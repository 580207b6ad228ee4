//! The versions that went live, per kind, oldest first: the last is the
//! active one, the one before it is where a rollback goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::plugins::{LoadedComponent, PluginKind};

/// One version that went live.
#[derive(Clone)]
pub struct Version {
    /// The compiled component.
    pub component: Arc<LoadedComponent>,
    /// Where it came from.
    pub source: String,
}

/// A version as `GET /admin/plugins` lists it.
#[derive(Debug, Serialize)]
pub struct VersionSummary {
    /// SHA-256 of the component.
    pub sha256: String,
    /// Its contract version.
    pub wit_version: String,
    /// Where it came from.
    pub source: String,
}

/// Versions kept per kind for rollback: each holds compiled code, so an
/// operator who swaps every minute must not grow the host for ever.
pub const KEPT: usize = 16;

/// Per kind, the versions that went live.
#[derive(Default)]
pub struct History {
    stacks: Mutex<HashMap<PluginKind, Vec<Version>>>,
}

impl History {
    /// Records that `version` went live.
    /// Records that `version` went live (the oldest beyond [`KEPT`] is
    /// forgotten).
    pub fn push(&self, version: Version) {
        if let Ok(mut stacks) = self.stacks.lock() {
            let stack = stacks.entry(version.component.kind).or_default();
            stack.push(version);
            if stack.len() > KEPT {
                stack.remove(0);
            }
        }
    }

    /// A component of `kind` with this hash that already went live, so an
    /// install of the same bytes need not compile or load them again.
    pub fn component(&self, kind: PluginKind, sha256: &str) -> Option<Arc<LoadedComponent>> {
        let stacks = self.stacks.lock().ok()?;
        stacks
            .get(&kind)?
            .iter()
            .rev()
            .find(|v| v.component.sha256 == sha256)
            .map(|v| v.component.clone())
    }

    /// The version before the active one of `kind`, if there is one.
    pub fn previous(&self, kind: PluginKind) -> Option<Version> {
        let stacks = self.stacks.lock().ok()?;
        let stack = stacks.get(&kind)?;
        stack.len().checked_sub(2).map(|i| stack[i].clone())
    }

    /// Forgets the active version of `kind` (after a rollback to the one
    /// before it).
    pub fn pop(&self, kind: PluginKind) {
        if let Ok(mut stacks) = self.stacks.lock() {
            if let Some(stack) = stacks.get_mut(&kind) {
                stack.pop();
            }
        }
    }

    /// The versions of `kind`, oldest first.
    pub fn summary(&self, kind: PluginKind) -> Vec<VersionSummary> {
        let Ok(stacks) = self.stacks.lock() else {
            return Vec::new();
        };
        stacks
            .get(&kind)
            .map(|stack| {
                stack
                    .iter()
                    .map(|v| VersionSummary {
                        sha256: v.component.sha256.clone(),
                        wit_version: v.component.wit_version.clone(),
                        source: v.source.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{embedded, Limits, PluginEngine};

    #[test]
    fn the_stack_keeps_the_last_versions_only() {
        let engine = PluginEngine::new(Limits::default(), None).unwrap();
        let component = Arc::new(
            engine
                .load(PluginKind::Normalizer, embedded::NORMALIZER)
                .unwrap(),
        );
        let history = History::default();
        for i in 0..(KEPT + 5) {
            history.push(Version {
                component: component.clone(),
                source: format!("v{i}"),
            });
        }
        let kept = history.summary(PluginKind::Normalizer);
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept[0].source, "v5");
        assert!(history
            .component(PluginKind::Normalizer, &component.sha256)
            .is_some());
        assert!(history
            .component(PluginKind::Health, &component.sha256)
            .is_none());
    }
}
