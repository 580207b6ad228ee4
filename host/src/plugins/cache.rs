//! The on-disk cache of compiled components.
//!
//! Compiling a component takes 30-120 ms of CPU; loading its compiled form
//! takes well under a millisecond. Entries are keyed by the SHA-256 of the
//! component bytes and a hash of the engine's compilation settings (which
//! includes the wasmtime version), so a different host build or config
//! never reads an incompatible entry. Writes go through a temporary file
//! and a rename, so a crash never leaves a torn entry.
//!
//! An entry is native code that the host maps and runs, so the cache is
//! trusted only when nobody else can write to it: the directory is created
//! `0700`, and one that is not owned by this user or that others may write
//! to is refused (the host then compiles every component, and says so).
//! Only components that were accepted (passed every check and went live, or
//! were configured at start-up) are stored; the least recently used entries
//! are evicted past [`MAX_BYTES`]; temporary files left by a crash are
//! removed.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use wasmtime::component::Component;
use wasmtime::Engine;

/// Whether a load came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOutcome {
    /// Deserialized from a cached compiled form.
    Hit,
    /// Compiled now (stored once accepted, see [`super::PluginEngine::keep`]).
    Miss,
    /// No cache configured.
    Disabled,
}

/// Total size of the entries the cache keeps.
pub const MAX_BYTES: u64 = 512 << 20;
/// A temporary file older than this was left by a crash.
const STALE_TMP: Duration = Duration::from_secs(600);

/// Where compiled components are cached unless told otherwise: the user's
/// cache directory (`~/.cache/tickstock/components` on Linux).
pub fn default_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "tickstock").map(|d| d.cache_dir().join("components"))
}

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompiledCache {
    /// Opens (creating if needed, `0700`) the cache in `dir` for `engine`.
    /// A directory another user could write to is refused with an error
    /// that says why.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        check_private(dir)?;
        remove_stale_tmp(dir);
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompiledCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    /// The directory the cache lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the compiled form of the component with this hash lives.
    pub fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// Loads a cached compiled form, if one exists and is readable.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256);
        // Read into memory rather than `deserialize_file`, which maps the
        // file: a mapped file truncated by someone else is a SIGBUS.
        let bytes = std::fs::read(&path).ok()?;
        // Recently used entries are evicted last.
        let _ = std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        // SAFETY: `deserialize` trusts its input to be the output of
        // `Component::serialize` from a compatible engine. Entries are only
        // written by `store` below, under a name that includes the engine's
        // compatibility hash; the directory belongs to this host, so its
        // contents are as trusted as the binary itself. Wasmtime still checks
        // the header and engine compatibility and refuses what does not fit.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, &bytes) };
        match loaded {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "unreadable compiled-component cache entry; recompiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores the compiled form of a component. Failures are logged, never
    /// fatal: the cache only saves time.
    pub fn store(&self, sha256: &str, component: &Component) {
        let path = self.entry(sha256);
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)
            });
        if let Err(err) = result {
            tracing::warn!(path = %path.display(), error = %err, "could not write compiled-component cache entry");
        }
        self.evict(MAX_BYTES);
    }

    /// Removes the least recently used entries until the rest take at most
    /// `max_bytes`.
    pub fn evict(&self, max_bytes: u64) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = dir
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
                tracing::debug!(path = %path.display(), "evicted a compiled-component cache entry");
            }
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Refuses a directory that is a symlink, is owned by another user, or is
/// writable by group or others.
fn check_private(dir: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    let refuse = |why: String| {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} {why}; compiled code read from it would run in this process, so it is not used \
                 (fix: chmod 700 it, or pick another --cache-dir)",
                dir.display()
            ),
        ))
    };
    if !meta.is_dir() {
        return refuse("is not a directory (a symlink?)".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o777;
        if mode & 0o022 != 0 {
            return refuse(format!("can be written by other users (mode {mode:o})"));
        }
        if meta.uid() != current_uid(dir)? {
            return refuse(format!("belongs to another user (uid {})", meta.uid()));
        }
    }
    Ok(())
}

/// This process's user id, read from a file it just created (std has no
/// `getuid`).
#[cfg(unix)]
fn current_uid(dir: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let probe = dir.join(format!(".uid-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    let uid = std::fs::metadata(&probe).map(|m| m.uid());
    let _ = std::fs::remove_file(&probe);
    uid
}

/// Removes temporary files a crashed writer left behind.
fn remove_stale_tmp(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let is_tmp = entry
            .path()
            .extension()
            .is_some_and(|x| x.to_string_lossy().starts_with("tmp"));
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TMP);
        if is_tmp && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
