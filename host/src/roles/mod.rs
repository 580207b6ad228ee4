//! The roles: `ingest` (feed -> normalizer -> ticks), `process` (ticks ->
//! health -> session and health events) and `dashboard` (events -> status
//! API and page, in [`crate::web`]). `run` starts all three in one process.
//! Roles talk only through the [`Bus`], so with Redis each restarts on its
//! own. This module wires the parts together; the parts themselves live in
//! [`crate::pipeline`], [`crate::health_loop`], [`crate::manager`] and
//! [`crate::web`].

pub mod ingest;
pub mod process;
mod run;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub use run::{run_all, run_dashboard, run_ingest, run_process, Host};

use crate::bus::{Bus, Channels};
use crate::config::{Config, PluginSources};
use crate::events::PluginEvent;
pub use crate::manager::RunningPlugin;
use crate::manager::{AutoRollback, PluginManager};
use crate::plugins::{
    embedded, ActivePlugin, CallStats, LoadedComponent, Plugin, PluginEngine, PluginInfo,
    PluginKind, PluginRegistry, World,
};

/// The bus the configuration asks for: Redis with a URL, else in-process.
pub fn bus(config: &Config) -> anyhow::Result<Bus> {
    let channels = Channels::new(config.channel_prefix.clone());
    match &config.redis_url {
        Some(url) => Bus::redis(url, channels, config.publish_buffer),
        None => Ok(Bus::memory(channels)),
    }
}

/// The plugin engine with the configured limits and cache.
pub fn engine(config: &Config) -> anyhow::Result<PluginEngine> {
    PluginEngine::new(config.limits, config.cache_dir.as_deref())
}

/// Where the component of `kind` comes from: its own flag, then
/// `--plugin-dir/KIND.wasm`, else the embedded default.
pub fn plugin_file(sources: &PluginSources, kind: PluginKind) -> Option<PathBuf> {
    let own = match kind {
        PluginKind::Normalizer => sources.normalizer.clone(),
        PluginKind::Health => sources.health.clone(),
    };
    own.or_else(|| {
        let dir = sources.dir.as_ref()?;
        let path = dir.join(format!("{kind}.wasm"));
        path.exists().then_some(path)
    })
}

/// Loads (compiles or takes from the cache, then checks) the component of
/// `kind`, off the async threads.
pub async fn load_plugin(
    engine: &PluginEngine,
    sources: &PluginSources,
    kind: PluginKind,
) -> anyhow::Result<Arc<LoadedComponent>> {
    let file = plugin_file(sources, kind);
    let engine = engine.clone();
    let what = file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| format!("the embedded {kind}"));
    let loaded = tokio::task::spawn_blocking(move || -> anyhow::Result<LoadedComponent> {
        let bytes = match &file {
            Some(path) => {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
            }
            None => embedded::component(kind).to_vec(),
        };
        Ok(engine.load(kind, &bytes)?)
    })
    .await
    .context("plugin loader thread")?
    .with_context(|| format!("loading {what} as the {kind} plugin"))?;
    tracing::info!(kind = %kind, source = %what, sha256 = %loaded.sha256, wit = %loaded.wit_version, cache = ?loaded.cache, "plugin component loaded");
    Ok(Arc::new(loaded))
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

/// Where the component of `kind` came from, for the registry.
pub fn plugin_source(sources: &PluginSources, kind: PluginKind) -> String {
    plugin_file(sources, kind)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "embedded".into())
}

/// Loads the role's plugin of `kind`, instantiates it off the async
/// threads, records it as active and starts publishing its status.
pub async fn start_plugin<W: World + Send + 'static>(
    config: &Config,
    engine: &PluginEngine,
    registry: &Arc<PluginRegistry>,
    bus: &Bus,
    kind: PluginKind,
    cancel: &CancellationToken,
) -> anyhow::Result<(Plugin<W>, Arc<LoadedComponent>)> {
    let component = load_plugin(engine, &config.plugins, kind).await?;
    let plugin = {
        let engine = engine.clone();
        let component = component.clone();
        tokio::task::spawn_blocking(move || Plugin::<W>::new(&engine, component))
            .await
            .context("plugin loader thread")??
    };
    tracing::info!(plugin = %plugin.label(), %kind, "plugin ready");
    let source = plugin_source(&config.plugins, kind);
    register(
        registry,
        &component,
        plugin.info(),
        plugin.stats().clone(),
        source,
        "loaded",
    );
    report_plugin(bus.clone(), registry.clone(), kind, cancel.clone());
    Ok((plugin, component))
}

/// Records a freshly loaded plugin as active.
fn register(
    registry: &PluginRegistry,
    component: &LoadedComponent,
    info: &PluginInfo,
    stats: Arc<CallStats>,
    source: String,
    action: &str,
) {
    registry.activate(
        ActivePlugin {
            kind: component.kind,
            name: info.name.clone(),
            version: info.version.clone(),
            wit_version: component.wit_version.clone(),
            sha256: component.sha256.clone(),
            loaded_at: chrono::Utc::now(),
            source,
            stats,
        },
        action,
        None,
    );
}

/// Publishes the active plugin of `kind` on `PREFIX:plugins` every two
/// seconds (name, version, calls, errors, latency), for the dashboard.
fn report_plugin(
    bus: Bus,
    registry: Arc<PluginRegistry>,
    kind: PluginKind,
    cancel: CancellationToken,
) {
    let channel = bus.channels().plugins();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Some(active) = registry.active(kind) {
                bus.publish_event(&channel, &PluginEvent::PluginStatus(active.status()));
            }
        }
    });
}

/// The plugin manager for the plugins this process runs, watching
/// `--plugin-dir` when one is given.
pub fn start_manager(
    config: &Config,
    engine: &PluginEngine,
    registry: &Arc<PluginRegistry>,
    bus: &Bus,
    running: Vec<RunningPlugin>,
    cancel: &CancellationToken,
) -> Arc<PluginManager> {
    let manager = PluginManager::new(
        engine.clone(),
        registry.clone(),
        bus.clone(),
        AutoRollback::default(),
        running,
    );
    if let Some(dir) = &config.plugins.dir {
        manager.watch_dir(dir.clone(), cancel.clone());
    }
    manager
}
