//! Which plugin version is active for each kind, since when, and what came
//! before: the host's record for the admin API, the dashboard's plugins
//! panel and `PREFIX:plugins` status events.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::stats::CallStats;
use crate::contract::PluginKind;
use crate::events::{health_time, session_time, PluginStatus};

/// The active version of one plugin kind.
#[derive(Debug, Clone)]
pub struct ActivePlugin {
    /// Its kind.
    pub kind: PluginKind,
    /// Self-reported name.
    pub name: String,
    /// Self-reported version.
    pub version: String,
    /// Contract version it was built against.
    pub wit_version: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// When it went live.
    pub loaded_at: DateTime<Utc>,
    /// Where it came from (`embedded`, a path, `admin upload`).
    pub source: String,
    /// Its call counters.
    pub stats: Arc<CallStats>,
}

impl ActivePlugin {
    /// The `plugin_status` event (also an element of `GET /admin/plugins`).
    pub fn status(&self) -> PluginStatus {
        let s = &self.stats;
        PluginStatus {
            kind: self.kind,
            name: self.name.clone(),
            version: self.version.clone(),
            wit_version: self.wit_version.clone(),
            sha256: self.sha256.clone(),
            loaded_at: session_time(self.loaded_at),
            source: self.source.clone(),
            calls: CallStats::get(&s.calls),
            errors: CallStats::get(&s.errors),
            deadline_errors: CallStats::get(&s.deadlines),
            p50_ms: s.quantile_ms(0.5),
            p99_ms: s.quantile_ms(0.99),
            timestamp: health_time(Utc::now()),
        }
    }
}

/// One entry of a kind's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEntry {
    /// `loaded`, `installed`, `rolled_back`, `auto_rolled_back`.
    pub action: String,
    /// Version that went live.
    pub version: String,
    /// Its name.
    pub name: String,
    /// Its hash.
    pub sha256: String,
    /// When.
    pub at: String,
    /// Why, for rollbacks.
    pub reason: Option<String>,
}

/// Incidents kept for health reports.
const INCIDENTS_KEPT: usize = 16;
/// History entries kept per kind (a swap a minute must not grow the host).
const HISTORY_KEPT: usize = 256;

/// Active plugins and their history, shared by the roles of one process,
/// and the incidents of their threads (abandoned calls).
#[derive(Debug, Default)]
pub struct PluginRegistry {
    slots: RwLock<HashMap<PluginKind, (ActivePlugin, Vec<HistoryEntry>)>>,
    incidents: Mutex<VecDeque<(Instant, String)>>,
    abandoned: [AtomicU64; 2],
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(PluginRegistry::default())
    }

    /// Records that `plugin` is now active.
    pub fn activate(&self, plugin: ActivePlugin, action: &str, reason: Option<String>) {
        let entry = HistoryEntry {
            action: action.to_string(),
            version: plugin.version.clone(),
            name: plugin.name.clone(),
            sha256: plugin.sha256.clone(),
            at: session_time(plugin.loaded_at),
            reason,
        };
        if let Ok(mut slots) = self.slots.write() {
            let kind = plugin.kind;
            match slots.get_mut(&kind) {
                Some((active, history)) => {
                    *active = plugin;
                    history.push(entry);
                    if history.len() > HISTORY_KEPT {
                        history.remove(0);
                    }
                }
                None => {
                    slots.insert(kind, (plugin, vec![entry]));
                }
            }
        }
    }

    /// Records an incident (a plugin thread abandoned) for the next health
    /// report, and counts it for `kind`.
    pub fn note_abandoned(&self, kind: PluginKind, what: String) {
        self.abandoned[kind_slot(kind)].fetch_add(1, Ordering::Relaxed);
        if let Ok(mut incidents) = self.incidents.lock() {
            if incidents.len() == INCIDENTS_KEPT {
                incidents.pop_front();
            }
            incidents.push_back((Instant::now(), what));
        }
    }

    /// Plugin threads of `kind` abandoned since start.
    pub fn abandoned(&self, kind: PluginKind) -> u64 {
        self.abandoned[kind_slot(kind)].load(Ordering::Relaxed)
    }

    /// Incidents noted at or after `since`, oldest first.
    pub fn incidents_since(&self, since: Instant) -> Vec<String> {
        self.incidents
            .lock()
            .map(|list| {
                list.iter()
                    .filter(|(at, _)| *at >= since)
                    .map(|(_, what)| what.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The active plugin of `kind`.
    pub fn active(&self, kind: PluginKind) -> Option<ActivePlugin> {
        self.slots.read().ok()?.get(&kind).map(|(a, _)| a.clone())
    }

    /// Every active plugin.
    pub fn all(&self) -> Vec<ActivePlugin> {
        let Ok(slots) = self.slots.read() else {
            return Vec::new();
        };
        PluginKind::ALL
            .iter()
            .filter_map(|k| slots.get(k).map(|(a, _)| a.clone()))
            .collect()
    }

    /// The history of `kind`, oldest first.
    pub fn history(&self, kind: PluginKind) -> Vec<HistoryEntry> {
        self.slots
            .read()
            .ok()
            .and_then(|s| s.get(&kind).map(|(_, h)| h.clone()))
            .unwrap_or_default()
    }
}

fn kind_slot(kind: PluginKind) -> usize {
    match kind {
        PluginKind::Normalizer => 0,
        PluginKind::Health => 1,
    }
}
