//! The manager's own logic with a scripted slot (no plugin thread): the
//! automatic rollback must never roll back a version it did not judge.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;

use super::{AutoRollback, InstallError, LiveSlot, PluginManager, RunningPlugin, WentLive};
use crate::bus::{Bus, Channels};
use crate::plugins::{
    embedded, ActivePlugin, CallStats, Limits, LoadedComponent, PluginEngine, PluginInfo,
    PluginKind, PluginRegistry,
};

/// Goes live at once with the next scripted version, or, once `hold` is
/// armed, only when a permit is added to it.
struct ScriptedSlot {
    versions: Mutex<VecDeque<&'static str>>,
    hold: Arc<Semaphore>,
    held: Mutex<bool>,
    entered: tokio::sync::Notify,
    live_stats: Mutex<Vec<Arc<CallStats>>>,
}

impl LiveSlot for ScriptedSlot {
    fn go_live(
        &self,
        _engine: PluginEngine,
        _component: Arc<LoadedComponent>,
    ) -> BoxFuture<'_, Result<WentLive, InstallError>> {
        Box::pin(async move {
            let held = self.held.lock().map(|h| *h).unwrap_or(false);
            if held {
                self.entered.notify_one();
                let _permit = self.hold.acquire().await;
            }
            let version = self
                .versions
                .lock()
                .ok()
                .and_then(|mut v| v.pop_front())
                .unwrap_or("?");
            let stats = Arc::new(CallStats::default());
            self.live_stats.lock().unwrap().push(stats.clone());
            Ok(WentLive {
                info: PluginInfo {
                    name: "scripted".into(),
                    version: version.into(),
                },
                stats,
                pause: Duration::ZERO,
                state: None,
            })
        })
    }

    /// These tests script installs only.
    fn start_shadow(
        &self,
        _engine: PluginEngine,
        _live: Arc<LoadedComponent>,
        _candidate: Arc<LoadedComponent>,
        _report: crate::shadow::ShadowReport,
    ) -> BoxFuture<
        '_,
        Result<
            (
                crate::shadow::runner::ShadowThread,
                crate::plugins::runner::Inbox<crate::shadow::ShadowInput>,
            ),
            InstallError,
        >,
    > {
        Box::pin(async {
            Err(InstallError::ShadowStart(
                PluginKind::Normalizer,
                "not scripted".into(),
            ))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_installed_while_the_rollback_waits_for_the_lock_stays_live() {
    let engine = PluginEngine::new(Limits::default(), None).unwrap();
    let component = Arc::new(
        engine
            .load(PluginKind::Normalizer, embedded::NORMALIZER)
            .unwrap(),
    );
    let registry = PluginRegistry::new();
    registry.activate(
        ActivePlugin {
            kind: PluginKind::Normalizer,
            name: "scripted".into(),
            version: "1.0.0".into(),
            wit_version: component.wit_version.clone(),
            sha256: component.sha256.clone(),
            loaded_at: chrono::Utc::now(),
            source: "embedded".into(),
            stats: Arc::new(CallStats::default()),
        },
        "loaded",
        None,
    );
    let slot = Arc::new(ScriptedSlot {
        versions: Mutex::new(VecDeque::from(["1.0.1-faulty", "1.0.2-fix"])),
        hold: Arc::new(Semaphore::new(0)),
        held: Mutex::new(false),
        entered: tokio::sync::Notify::new(),
        live_stats: Mutex::new(Vec::new()),
    });
    let manager = PluginManager::new(
        engine,
        registry.clone(),
        Bus::memory(Channels::new("t-race".to_string())),
        AutoRollback {
            window: Duration::from_secs(20),
            max_failures: 3,
        },
        vec![RunningPlugin {
            slot: slot.clone(),
            tap: Default::default(),
            component,
            source: "embedded".into(),
        }],
    );
    let bytes = embedded::NORMALIZER.to_vec();

    // The faulty version goes live; the automatic rollback watches it.
    manager
        .install(PluginKind::Normalizer, bytes.clone(), "test")
        .await
        .unwrap();
    let faulty = slot.live_stats.lock().unwrap()[0].clone();

    // The fix's install takes the lock and is held inside the swap...
    *slot.held.lock().unwrap() = true;
    let installing = {
        let manager = manager.clone();
        tokio::spawn(async move { manager.install(PluginKind::Normalizer, bytes, "fix").await })
    };
    tokio::time::timeout(Duration::from_secs(30), slot.entered.notified())
        .await
        .expect("the fix's install reached the swap");
    // ...while the faulty version fails: the watch judges it and waits for
    // the lock.
    faulty.errors.fetch_add(3, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    slot.hold.add_permits(1);
    installing.await.unwrap().unwrap();

    // The watch got the lock after the fix went live: it must leave it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        registry.active(PluginKind::Normalizer).unwrap().version,
        "1.0.2-fix"
    );
    let actions: Vec<String> = registry
        .history(PluginKind::Normalizer)
        .into_iter()
        .map(|h| h.action)
        .collect();
    assert_eq!(actions, ["loaded", "installed", "installed"]);
}
