//! The watched plugin directory (`--plugin-dir`): a new or changed
//! `normalizer*.wasm` / `health*.wasm` is installed through
//! [`PluginManager::install`].
//!
//! It polls once a second (works on every filesystem, and an atomic rename
//! shows up as a change); a file must keep the same size for two polls, so
//! a copy in progress is not installed half-written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::PluginManager;
use crate::plugins::PluginKind;

/// Time between two looks at the directory.
const POLL: Duration = Duration::from_secs(1);

/// Starts watching `dir`. What is there now is what the roles started with
/// and counts as installed; it is read before this returns, so a file
/// written right after start-up is seen as new.
pub(super) fn watch(manager: &Arc<PluginManager>, dir: PathBuf, cancel: CancellationToken) {
    let manager = Arc::clone(manager);
    let mut installed: HashMap<PathBuf, String> = scan(&dir)
        .into_iter()
        .map(|(path, bytes)| (path, sha(&bytes)))
        .collect();
    tokio::spawn(async move {
        let mut sizes: HashMap<PathBuf, u64> = HashMap::new();
        let mut every = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            for (path, bytes) in scan(&dir) {
                let size = bytes.len() as u64;
                if sizes.insert(path.clone(), size) != Some(size) {
                    continue; // still changing, or new: look again next time
                }
                let hash = sha(&bytes);
                if installed.get(&path) == Some(&hash) {
                    continue;
                }
                installed.insert(path.clone(), hash);
                install(&manager, &path, bytes).await;
            }
        }
    });
}

async fn install(manager: &Arc<PluginManager>, path: &Path, bytes: Vec<u8>) {
    let Some(kind) = kind_of(path) else { return };
    if !manager.runs(kind) {
        return;
    }
    let source = path.display().to_string();
    match manager.install(kind, bytes, &source).await {
        Ok(done) => {
            tracing::info!(%kind, version = %done.version, %source, "installed from the plugin directory")
        }
        Err(err) => tracing::warn!(%kind, %source, error = %err, "plugin file refused"),
    }
}

/// The kind a file in the directory is for, by its name.
fn kind_of(path: &Path) -> Option<PluginKind> {
    let name = path.file_name()?.to_str()?;
    if !name.ends_with(".wasm") {
        return None;
    }
    PluginKind::ALL
        .into_iter()
        .find(|kind| name.starts_with(kind.as_str()))
}

fn scan(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| kind_of(p).is_some())
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
