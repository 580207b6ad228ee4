//! The watched plugin directory (`--plugin-dir`): a new or changed
//! `normalizer*.wasm` / `health*.wasm` is installed through
//! [`PluginManager::install`].
//!
//! One naming rule, at start-up and while watching: a file of kind K is a
//! regular file (not a symlink, FIFO or device) named `K*.wasm`, at most
//! [`MAX_FILE`] bytes; when several match, the last in name order is the
//! one the role starts with ([`newest_in`]). It polls once a second (works
//! on every filesystem, and an atomic rename shows up as a change), reading
//! only each file's size and modification time; a file must keep them for
//! two polls, so a copy in progress is not installed half-written, and only
//! then is it read (off the async threads) and, unless its content is what
//! was installed from it before, installed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::PluginManager;
use crate::plugins::PluginKind;

/// Time between two looks at the directory.
const POLL: Duration = Duration::from_secs(1);
/// Largest plugin file read (the admin API's upload limit).
pub const MAX_FILE: u64 = 32 << 20;

/// Starts watching `dir`. What is there now is what the roles started with
/// and counts as installed; it is read before this returns, so a file
/// written right after start-up is seen as new.
pub(super) fn watch(manager: &Arc<PluginManager>, dir: PathBuf, cancel: CancellationToken) {
    let manager = Arc::clone(manager);
    // What is there now is handled: the roles started with it.
    let mut handled: HashMap<PathBuf, Stamp> = stamps(&dir).into_iter().collect();
    let mut hashes: HashMap<PathBuf, String> = HashMap::new();
    tokio::spawn(async move {
        let mut seen: HashMap<PathBuf, Stamp> = HashMap::new();
        let mut every = tokio::time::interval(POLL);
        // After a stall, no burst of polls: two looks at a file are always
        // at least `POLL` apart, or a half-written file could seem settled.
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let dir_now = dir.clone();
            let now = tokio::task::spawn_blocking(move || stamps(&dir_now))
                .await
                .unwrap_or_default();
            for (path, stamp) in now {
                if seen.insert(path.clone(), stamp) != Some(stamp) {
                    continue; // still changing, or new: look again next time
                }
                if handled.get(&path) == Some(&stamp) {
                    continue; // unchanged since it was handled
                }
                handled.insert(path.clone(), stamp);
                let file = path.clone();
                let read = tokio::task::spawn_blocking(move || {
                    std::fs::read(file).map(|bytes| {
                        let hash = super::sha256_hex(&bytes);
                        (bytes, hash)
                    })
                });
                let Ok(Ok((bytes, hash))) = read.await else {
                    continue;
                };
                // Touched but not changed: nothing to install.
                if hashes.insert(path.clone(), hash.clone()) == Some(hash) {
                    continue;
                }
                install(&manager, &path, bytes).await;
            }
        }
    });
}

/// When a file last changed, as far as polling can tell.
type Stamp = (u64, Option<std::time::SystemTime>);

/// The plugin files in `dir` with their size and modification time (no
/// content is read: a poll costs one directory listing).
fn stamps(dir: &Path) -> Vec<(PathBuf, Stamp)> {
    files(dir)
        .into_iter()
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            Some((p, (meta.len(), meta.modified().ok())))
        })
        .collect()
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

/// Whether `path` may be read as a plugin file: a regular file (checked
/// without following a symlink), not too large.
fn readable(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() && meta.len() <= MAX_FILE => true,
        Ok(meta) if meta.file_type().is_file() => {
            tracing::warn!(path = %path.display(), bytes = meta.len(), max = MAX_FILE, "plugin file too large; ignored");
            false
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "not a regular file (a symlink, FIFO or device); ignored");
            false
        }
        Err(_) => false,
    }
}

/// The plugin files in `dir`, in name order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| kind_of(p).is_some() && readable(p))
        .collect();
    files.sort();
    files
}

/// The file of `kind` a role starts with: the last in name order.
pub fn newest_in(dir: &Path, kind: PluginKind) -> Option<PathBuf> {
    files(dir).into_iter().rfind(|p| kind_of(p) == Some(kind))
}
