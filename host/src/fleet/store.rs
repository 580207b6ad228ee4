//! [`FleetStore`]: what a fleet keeps in Redis, and the one place its key
//! names are spelled (all under the channel prefix):
//!
//! - `PREFIX:fleet:blob:SHA256`: a validated component's bytes;
//! - `PREFIX:fleet:generation:KIND`: the last generation issued (`INCR`);
//! - `PREFIX:fleet:desired:KIND`: the kind's desired state, a signed
//!   install, rollback or promote command;
//! - `PREFIX:fleet:stack:KIND`: the SHA-256s installed, newest last (what a
//!   fleet rollback goes back through);
//! - `PREFIX:fleet:shadow:KIND`: the SHA-256 of the running shadow's
//!   candidate;
//! - `PREFIX:fleet:instances`: one heartbeat per instance (a hash).
//!
//! It connects lazily and reconnects by itself (redis-rs's
//! `ConnectionManager`); every call is bounded in time, so a Redis outage
//! makes a fleet call fail with an error, never hang.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use tokio::sync::OnceCell;

use crate::bus::KindName;
use crate::plugins::PluginKind;
use crate::secret::Secret;

/// How long one Redis call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Entries of a kind's install stack kept.
const STACK_DEPTH: isize = 64;

/// A Redis error, or a call that ran out of time. It never holds the URL.
#[derive(Debug, thiserror::Error)]
#[error("the fleet store (Redis): {0}")]
pub struct StoreError(String);

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        StoreError(err.to_string())
    }
}

/// What a fleet keeps in Redis.
pub struct FleetStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    prefix: String,
}

impl FleetStore {
    /// A store under `prefix` on the Redis at `url` (not connected yet).
    pub fn new(url: &Secret, prefix: &str) -> anyhow::Result<FleetStore> {
        // The URL may hold a password: the error names the problem only.
        let client = redis::Client::open(url.expose())
            .map_err(|e| anyhow::anyhow!("invalid Redis URL: {}", e.kind_name()))?;
        Ok(FleetStore {
            client,
            connection: OnceCell::new(),
            prefix: prefix.to_string(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(2);
        let connect = self
            .connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config));
        match tokio::time::timeout(CALL_TIMEOUT * 2, connect).await {
            Ok(Ok(c)) => Ok(c.clone()),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(StoreError("connecting timed out".into())),
        }
    }

    /// Runs one call, bounded by [`CALL_TIMEOUT`].
    async fn call<T>(
        &self,
        f: impl AsyncFnOnce(ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let connection = self.connection().await?;
        match tokio::time::timeout(CALL_TIMEOUT, f(connection)).await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError("the call timed out".into())),
        }
    }

    fn key(&self, what: &str) -> String {
        format!("{}:fleet:{what}", self.prefix)
    }

    /// The key a component's bytes are stored under.
    pub fn blob_key(&self, sha256: &str) -> String {
        self.key(&format!("blob:{sha256}"))
    }

    /// The key of a kind's desired state.
    pub fn desired_key(&self, kind: PluginKind) -> String {
        self.key(&format!("desired:{kind}"))
    }

    /// The hash the heartbeats are kept in.
    pub fn instances_key(&self) -> String {
        self.key("instances")
    }

    /// Stores a component's bytes under its SHA-256.
    pub async fn put_blob(&self, sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let key = self.blob_key(sha256);
        self.call(async |mut c| c.set(key, bytes).await).await
    }

    /// The bytes stored under `sha256`.
    pub async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.blob_key(sha256);
        self.call(async |mut c| c.get(key).await).await
    }

    /// The next generation of `kind` (the first is 1).
    pub async fn next_generation(&self, kind: PluginKind) -> Result<u64, StoreError> {
        let key = self.key(&format!("generation:{kind}"));
        self.call(async |mut c| c.incr(key, 1u64).await).await
    }

    /// Records `signed` as the desired state of `kind`.
    pub async fn set_desired(&self, kind: PluginKind, signed: &str) -> Result<(), StoreError> {
        let key = self.desired_key(kind);
        self.call(async |mut c| c.set(key, signed).await).await
    }

    /// The signed desired state of `kind`, if one was issued.
    pub async fn desired(&self, kind: PluginKind) -> Result<Option<String>, StoreError> {
        let key = self.desired_key(kind);
        self.call(async |mut c| c.get(key).await).await
    }

    /// The SHA-256s installed for `kind`, oldest first.
    pub async fn stack(&self, kind: PluginKind) -> Result<Vec<String>, StoreError> {
        let key = self.key(&format!("stack:{kind}"));
        self.call(async |mut c| c.lrange(key, 0, -1).await).await
    }

    /// Puts `sha256` on top of `kind`'s install stack (keeping the newest
    /// [`STACK_DEPTH`]).
    pub async fn push_stack(&self, kind: PluginKind, sha256: &str) -> Result<(), StoreError> {
        let key = self.key(&format!("stack:{kind}"));
        self.call(async |mut c| {
            redis::pipe()
                .rpush(&key, sha256)
                .ignore()
                .ltrim(&key, -STACK_DEPTH, -1)
                .ignore()
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Takes the top off `kind`'s install stack.
    pub async fn pop_stack(&self, kind: PluginKind) -> Result<(), StoreError> {
        let key = self.key(&format!("stack:{kind}"));
        self.call(async |mut c| {
            let _: Option<String> = c.rpop(key, None).await?;
            Ok(())
        })
        .await
    }

    /// The candidate of the fleet's running `kind` shadow, if any.
    pub async fn shadow(&self, kind: PluginKind) -> Result<Option<String>, StoreError> {
        let key = self.key(&format!("shadow:{kind}"));
        self.call(async |mut c| c.get(key).await).await
    }

    /// Records (or, with `None`, clears) the fleet's running `kind` shadow.
    pub async fn set_shadow(
        &self,
        kind: PluginKind,
        sha256: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = self.key(&format!("shadow:{kind}"));
        self.call(async |mut c| match sha256 {
            Some(sha) => c.set(key, sha).await,
            None => c.del(key).await,
        })
        .await
    }

    /// Publishes `text` on `channel`; how many subscribers got it.
    pub async fn announce(&self, channel: &str, text: &str) -> Result<u64, StoreError> {
        self.call(async |mut c| c.publish(channel, text).await)
            .await
    }

    /// Writes (or replaces) the heartbeat of instance `id`.
    pub async fn beat(&self, id: &str, heartbeat: &str) -> Result<(), StoreError> {
        let key = self.instances_key();
        self.call(async |mut c| c.hset(key, id, heartbeat).await)
            .await
    }

    /// Removes heartbeats (an instance that stopped, or went silent).
    pub async fn forget(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = self.instances_key();
        self.call(async |mut c| c.hdel(key, ids).await).await
    }

    /// Every heartbeat, as stored.
    pub async fn heartbeats(&self) -> Result<Vec<(String, String)>, StoreError> {
        let key = self.instances_key();
        self.call(async |mut c| c.hgetall(key).await).await
    }
}
