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

/// Per kind, the versions that went live.
#[derive(Default)]
pub struct History {
    stacks: Mutex<HashMap<PluginKind, Vec<Version>>>,
}

impl History {
    /// Records that `version` went live.
    pub fn push(&self, version: Version) {
        if let Ok(mut stacks) = self.stacks.lock() {
            stacks
                .entry(version.component.kind)
                .or_default()
                .push(version);
        }
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
