//! The on-disk cache of compiled components.
//!
//! Compiling a component takes 30-120 ms of CPU; loading its compiled form
//! takes well under a millisecond. Entries are keyed by the SHA-256 of the
//! component bytes and a hash of the engine's compilation settings (which
//! includes the wasmtime version), so a different host build or config
//! never reads an incompatible entry. Writes go through a temporary file
//! and a rename, so a crash never leaves a torn entry.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

/// Whether a load came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOutcome {
    /// Deserialized from a cached compiled form.
    Hit,
    /// Compiled now (and stored, if the cache is writable).
    Miss,
    /// No cache configured.
    Disabled,
}

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompiledCache {
    /// Opens (creating if needed) the cache in `dir` for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
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
    }
}
