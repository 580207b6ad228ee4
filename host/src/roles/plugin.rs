//! How a role gets its plugin: the component from its flag, the plugin
//! directory or the embedded default; an instance made off the async
//! threads; its entry in the registry; its status on `PREFIX:plugins`
//! every two seconds.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::RoleContext;
use crate::config::{Config, PluginSources};
use crate::events::PluginEvent;
use crate::manager::watch::newest_in;
use crate::plugins::{
    embedded, ActivePlugin, LoadedComponent, Plugin, PluginEngine, PluginKind, PluginRegistry,
    World,
};

/// Where the component of `kind` comes from: its own flag, then the file
/// of that kind in `--plugin-dir` (the watcher's naming rule, see
/// [`crate::manager::watch`]), else the embedded default.
pub fn plugin_file(sources: &PluginSources, kind: PluginKind) -> Option<PathBuf> {
    let own = match kind {
        PluginKind::Normalizer => sources.normalizer.clone(),
        PluginKind::Health => sources.health.clone(),
    };
    own.or_else(|| newest_in(sources.dir.as_ref()?, kind))
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
    ctx: &RoleContext,
) -> anyhow::Result<(Plugin<W>, Arc<LoadedComponent>)> {
    let kind = W::KIND;
    let component = load_plugin(&ctx.engine, &config.plugins, kind).await?;
    let plugin = {
        let engine = ctx.engine.clone();
        let component = component.clone();
        tokio::task::spawn_blocking(move || Plugin::<W>::new(&engine, component))
            .await
            .context("plugin loader thread")??
    };
    tracing::info!(plugin = %plugin.label(), %kind, "plugin ready");
    // Configured and instantiated: worth keeping compiled (file I/O: off
    // the async threads, and nothing waits for it).
    let (engine, kept) = (ctx.engine.clone(), component.clone());
    tokio::task::spawn_blocking(move || engine.keep(&kept));
    register(&ctx.registry, &plugin, plugin_source(&config.plugins, kind));
    report_plugin(ctx, kind);
    Ok((plugin, component))
}

/// Records a freshly loaded plugin as active.
fn register<W: World>(registry: &PluginRegistry, plugin: &Plugin<W>, source: String) {
    let component = plugin.component();
    let info = plugin.info();
    registry.activate(
        ActivePlugin {
            kind: component.kind,
            name: info.name.clone(),
            version: info.version.clone(),
            wit_version: component.wit_version.clone(),
            sha256: component.sha256.clone(),
            loaded_at: chrono::Utc::now(),
            source,
            stats: plugin.stats().clone(),
        },
        "loaded",
        None,
    );
}

/// Publishes the active plugin of `kind` on `PREFIX:plugins` every two
/// seconds (name, version, calls, errors, latency), for the dashboard.
fn report_plugin(ctx: &RoleContext, kind: PluginKind) {
    let (bus, registry, cancel) = (ctx.bus.clone(), ctx.registry.clone(), ctx.cancel.clone());
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
