//! Automatic rollback: a version that keeps failing (trap, deadline,
//! memory limit) right after going live is replaced by the one before it.

use std::sync::Arc;
use std::time::Duration;

use super::PluginManager;
use crate::plugins::{ActivePlugin, CallStats, PluginKind};

/// How often the watch looks at the new version's error count.
const POLL: Duration = Duration::from_millis(50);

/// A new version that fails `max_failures` times within `window` of going
/// live is rolled back.
#[derive(Debug, Clone, Copy)]
pub struct AutoRollback {
    /// How long after going live failures count.
    pub window: Duration,
    /// Failures (trap, deadline, memory) that trigger the rollback.
    pub max_failures: u64,
}

impl Default for AutoRollback {
    fn default() -> Self {
        AutoRollback {
            window: Duration::from_secs(60),
            max_failures: 3,
        }
    }
}

/// Whether `active` is still the live version of its kind: the same
/// component, and the same instance lineage (a reinstall of the same bytes
/// starts new counters).
fn still_live(manager: &PluginManager, active: &ActivePlugin) -> bool {
    manager
        .registry()
        .active(active.kind)
        .is_some_and(|a| a.sha256 == active.sha256 && Arc::ptr_eq(&a.stats, &active.stats))
}

/// Watches the version of `kind` that just went live for `auto.window`.
pub(super) fn watch(manager: &Arc<PluginManager>, kind: PluginKind, auto: AutoRollback) {
    let Some(active) = manager.registry().active(kind) else {
        return;
    };
    let manager = Arc::clone(manager);
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        while start.elapsed() < auto.window {
            tokio::time::sleep(POLL).await;
            if !still_live(&manager, &active) {
                return;
            }
            let failures = CallStats::get(&active.stats.errors);
            if failures < auto.max_failures {
                continue;
            }
            let reason = format!(
                "{kind} {} failed {failures} times within {}s of going live",
                active.version,
                start.elapsed().as_secs()
            );
            let _one_at_a_time = manager.lock().await;
            // An operator may have installed a fix while this waited for
            // the lock: roll back only the version that was judged.
            if !still_live(&manager, &active) {
                return;
            }
            if let Err(err) = manager.rollback_locked(kind, Some(reason), true).await {
                tracing::error!(%kind, error = %err, "automatic rollback failed");
            }
            return;
        }
    });
}
