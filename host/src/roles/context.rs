//! [`RoleContext`]: what the roles of one process share (the bus, the
//! plugin engine, the registry, the shutdown token) and how their plugin
//! threads report trouble: an abandoned thread becomes a `plugin_abandoned`
//! event, a counter and an issue in the next health report; a runner that
//! cannot go on stops the host with an error ([`Fatal`]).

use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Channels};
use crate::config::Config;
use crate::events::{health_time, PluginAbandoned, PluginEvent};
use crate::fleet::{Fleet, FleetKey, Joining};
use crate::manager::{AutoRollback, PluginManager, RunningPlugin};
use crate::plugins::runner::{RunnerEvent, RunnerOptions};
use crate::plugins::{PluginEngine, PluginKind, PluginRegistry};

/// Why the host stopped by itself, if it did.
#[derive(Debug, Default)]
pub struct Fatal {
    reason: Mutex<Option<String>>,
}

impl Fatal {
    fn set(&self, reason: String) {
        if let Ok(mut slot) = self.reason.lock() {
            slot.get_or_insert(reason);
        }
    }

    /// An error if the host stopped by itself.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.reason.lock().ok().and_then(|r| r.clone()) {
            Some(reason) => Err(anyhow::anyhow!("the host stopped itself: {reason}")),
            None => Ok(()),
        }
    }
}

/// The bus the configuration asks for: Redis with a URL, else in-process.
pub fn bus(config: &Config) -> anyhow::Result<Bus> {
    let channels = Channels::new(config.channel_prefix.clone());
    match &config.redis_url {
        Some(url) => Bus::redis(url, channels, config.publish_buffer),
        None => Ok(Bus::memory(channels)),
    }
}

/// What the roles of one process share.
#[derive(Clone)]
pub struct RoleContext {
    /// The bus.
    pub bus: Bus,
    /// The plugin engine.
    pub engine: PluginEngine,
    /// The active plugins, their history and incidents.
    pub registry: Arc<PluginRegistry>,
    /// Cancelled at shutdown: a signal, or a [`Fatal`] condition.
    pub cancel: CancellationToken,
    /// Set when a plugin runner cannot go on.
    pub fatal: Arc<Fatal>,
}

impl RoleContext {
    /// The bus and engine the configuration asks for (Redis with a URL,
    /// else in-process), stopping on `cancel`.
    pub fn new(config: &Config, cancel: CancellationToken) -> anyhow::Result<RoleContext> {
        let ctx = RoleContext {
            bus: bus(config)?,
            engine: PluginEngine::new(config.limits, config.cache_dir.as_deref())?,
            registry: PluginRegistry::new(),
            cancel,
            fatal: Arc::default(),
        };
        ctx.stop_if_the_publisher_dies();
        Ok(ctx)
    }

    /// A bus that can no longer publish is fatal: the host stops with an
    /// error instead of dropping every message from then on.
    fn stop_if_the_publisher_dies(&self) {
        let died = self.bus.publisher_died();
        let (cancel, fatal) = (self.cancel.clone(), self.fatal.clone());
        tokio::spawn(async move {
            if died.await {
                fatal.set("the Redis publisher stopped: nothing more can be published".into());
                cancel.cancel();
            }
        });
    }

    /// How the plugin thread of `kind` reports: abandoned threads are
    /// published, counted and noted for health; a fatal condition stops
    /// the host.
    pub fn runner_options(&self, kind: PluginKind) -> RunnerOptions {
        let (bus, registry) = (self.bus.clone(), self.registry.clone());
        let (cancel, fatal) = (self.cancel.clone(), self.fatal.clone());
        let on_event = move |event: RunnerEvent| match event {
            RunnerEvent::Abandoned {
                plugin,
                stuck_for,
                stuck_now,
                ..
            } => {
                let message = format!(
                    "{kind} plugin {plugin}: a call did not return within {:.1}s; its thread was replaced",
                    stuck_for.as_secs_f64()
                );
                registry.note_abandoned(kind, message.clone());
                let event = PluginEvent::PluginAbandoned(PluginAbandoned {
                    kind,
                    plugin,
                    stuck_ms: stuck_for.as_millis() as u64,
                    stuck_now,
                    message,
                    timestamp: health_time(Utc::now()),
                });
                bus.publish_event(&bus.channels().plugins(), &event);
            }
            RunnerEvent::Fatal { reason, .. } => {
                fatal.set(format!("the {kind} plugin cannot run: {reason}"));
                cancel.cancel();
            }
        };
        RunnerOptions {
            on_event: Some(Arc::new(on_event)),
            ..RunnerOptions::default()
        }
    }

    /// The plugin manager for the plugins this process runs, watching
    /// `--plugin-dir` when one is given.
    pub fn start_manager(
        &self,
        config: &Config,
        running: Vec<RunningPlugin>,
    ) -> Arc<PluginManager> {
        let manager = PluginManager::new(
            self.engine.clone(),
            self.registry.clone(),
            self.bus.clone(),
            AutoRollback::default(),
            running,
        );
        if let Some(dir) = &config.plugins.dir {
            manager.watch_dir(dir.clone(), self.cancel.clone());
        }
        manager
    }

    /// Joins the fleet of this prefix (with Redis): the agent takes signed
    /// commands for `manager`'s plugins (with the fleet key) and writes
    /// this instance's heartbeat as `role`.
    pub fn join_fleet(
        &self,
        config: &Config,
        manager: &Arc<PluginManager>,
        role: &str,
    ) -> anyhow::Result<Option<Fleet>> {
        let key = config
            .fleet_key
            .clone()
            .map(FleetKey::new)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let joining = Joining {
            redis_url: config.redis_url.as_ref(),
            key,
            bus: &self.bus,
            engine: &self.engine,
            manager,
            role,
        };
        Fleet::join(joining, self.cancel.clone()).context("joining the fleet")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::cli::CommonArgs;

    #[tokio::test]
    async fn an_abandoned_thread_is_published_counted_and_noted_and_a_fatal_one_stops_the_host() {
        let cache = tempfile::tempdir().unwrap();
        let args = CommonArgs {
            channel_prefix: Some("t-context".into()),
            cache_dir: Some(cache.path().to_path_buf()),
            ..Default::default()
        };
        let config = Config::resolve_with(&args, None).unwrap();
        let ctx = RoleContext::new(&config, CancellationToken::new()).unwrap();
        let mut plugins = ctx.bus.subscribe(vec![ctx.bus.channels().plugins()], 16);
        let on_event = ctx.runner_options(PluginKind::Normalizer).on_event.unwrap();
        let since = Instant::now();
        on_event(RunnerEvent::Abandoned {
            thread: "normalize",
            plugin: "massive-stocks@9.9.9".into(),
            stuck_for: Duration::from_millis(2_500),
            stuck_now: 1,
        });
        let message = tokio::time::timeout(Duration::from_secs(5), plugins.recv())
            .await
            .unwrap()
            .unwrap();
        let PluginEvent::PluginAbandoned(event) = serde_json::from_str(&message.payload).unwrap()
        else {
            panic!("not a plugin_abandoned event: {}", message.payload);
        };
        assert_eq!(event.kind, PluginKind::Normalizer);
        assert_eq!(event.plugin, "massive-stocks@9.9.9");
        assert_eq!(event.stuck_ms, 2_500);
        assert_eq!(ctx.registry.abandoned(PluginKind::Normalizer), 1);
        let issues = ctx.registry.incidents_since(since);
        assert!(
            issues[0].contains("did not return within 2.5s"),
            "{issues:?}"
        );
        assert!(ctx.fatal.check().is_ok());
        assert!(!ctx.cancel.is_cancelled());

        on_event(RunnerEvent::Fatal {
            thread: "normalize",
            reason: "4 normalize threads are stuck".into(),
        });
        assert!(ctx.cancel.is_cancelled(), "the host was not stopped");
        let err = ctx.fatal.check().unwrap_err().to_string();
        assert!(err.contains("4 normalize threads are stuck"), "{err}");
    }
}
