//! [`Issuer`]: the admin side of the fleet. An install (or shadow) is
//! validated here first, exactly as an instance would validate it, so a
//! bad upload is refused at the door; then its bytes are stored under their
//! SHA-256, the kind's next generation is taken, the signed command is
//! written (as the desired state for install, rollback and promote) and
//! announced on the control channel. Every instance then applies it on its
//! own ([`super::agent`]); the roster shows who did.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use thiserror::Error;

use super::command::{Action, Command, FleetKey};
use super::roster::Roster;
use super::store::{FleetStore, StoreError};
use crate::events::health_time;
use crate::manager::{sha256_hex, validate, InstallError};
use crate::plugins::{embedded, PluginEngine, PluginKind};

/// Why a fleet command was not issued.
#[derive(Debug, Error)]
pub enum IssueError {
    /// The component was refused (it would be refused by every instance).
    #[error(transparent)]
    Refused(#[from] InstallError),
    /// Redis could not be reached or did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The fleet has installed nothing that a rollback could undo.
    #[error("the fleet has no earlier {0} version to roll back to")]
    NothingToRollBack(PluginKind),
    /// No fleet shadow of that kind is running (or ended unpromoted).
    #[error("no {0} shadow is running in the fleet")]
    NoShadow(PluginKind),
    /// A fleet shadow of that kind is running already.
    #[error("a {0} shadow is already running in the fleet; stop it first (DELETE /admin/plugins/{0}/shadow)")]
    ShadowRunning(PluginKind),
}

/// What was issued.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    /// The kind.
    pub kind: PluginKind,
    /// What every instance is asked to do.
    pub action: &'static str,
    /// The command's generation.
    pub generation: u64,
    /// The component it names (empty for `shadow_stop`).
    pub sha256: String,
    /// The component's self-reported name, when it was validated here.
    pub name: Option<String>,
    /// Its self-reported version, when it was validated here.
    pub version: Option<String>,
    /// How many processes were subscribed to the control channel when it
    /// was announced.
    pub announced_to: u64,
}

/// Reads the desired state and the heartbeats (the key, when there is one,
/// verifies the desired-state records: one that does not verify is not
/// shown).
pub struct RosterReader {
    store: Arc<FleetStore>,
    key: Option<FleetKey>,
}

impl RosterReader {
    /// A reader of `store`.
    pub fn new(store: Arc<FleetStore>, key: Option<FleetKey>) -> RosterReader {
        RosterReader { store, key }
    }

    /// The verified desired state of each kind.
    pub async fn desired(&self) -> Result<BTreeMap<PluginKind, Command>, StoreError> {
        let mut desired = BTreeMap::new();
        let Some(key) = &self.key else {
            return Ok(desired);
        };
        for kind in PluginKind::ALL {
            if let Some(text) = self.store.desired(kind).await? {
                if let Ok(command) = key.verify(&text) {
                    desired.insert(kind, command);
                }
            }
        }
        Ok(desired)
    }

    /// The live instances against the desired state; removes heartbeats
    /// silent for long.
    pub async fn read(&self) -> Result<Roster, StoreError> {
        let desired = self.desired().await?;
        let heartbeats = self.store.heartbeats().await?;
        let (roster, stale) = Roster::of(desired, &heartbeats, Utc::now().timestamp_millis());
        self.store.forget(&stale).await?;
        Ok(roster)
    }
}

/// Issues fleet commands.
pub struct Issuer {
    key: FleetKey,
    store: Arc<FleetStore>,
    engine: PluginEngine,
    control: String,
    issued_by: String,
    roster: RosterReader,
    /// One command at a time from this process, so that its generations
    /// reach the desired-state record in order.
    busy: tokio::sync::Mutex<()>,
}

impl Issuer {
    /// An issuer signing with `key`, validating with `engine`, announcing
    /// on `control`, naming `issued_by` (this instance's id).
    pub fn new(
        key: FleetKey,
        store: Arc<FleetStore>,
        engine: PluginEngine,
        control: String,
        issued_by: String,
    ) -> Issuer {
        Issuer {
            roster: RosterReader::new(store.clone(), Some(key.clone())),
            key,
            store,
            engine,
            control,
            issued_by,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// The roster.
    pub fn roster(&self) -> &RosterReader {
        &self.roster
    }

    /// Validates `bytes` as `kind` and asks every instance to make it live.
    pub async fn install(&self, kind: PluginKind, bytes: Vec<u8>) -> Result<Issued, IssueError> {
        let (sha256, name, version) = self.validated(kind, bytes).await?;
        let _one = self.busy.lock().await;
        self.store.push_stack(kind, &sha256).await?;
        let mut issued = self.issue(kind, Action::Install, sha256, None).await?;
        (issued.name, issued.version) = (Some(name), Some(version));
        Ok(issued)
    }

    /// Asks every instance to go back to the version the fleet installed
    /// before the current one (past the first fleet install: the built-in
    /// version).
    pub async fn rollback(&self, kind: PluginKind) -> Result<Issued, IssueError> {
        let _one = self.busy.lock().await;
        let stack = self.store.stack(kind).await?;
        let target = match stack.as_slice() {
            [] => return Err(IssueError::NothingToRollBack(kind)),
            [_only] => {
                let bytes = embedded::component(kind);
                let sha256 = sha256_hex(bytes);
                self.store.put_blob(&sha256, bytes).await?;
                sha256
            }
            [.., before, _top] => before.clone(),
        };
        self.store.pop_stack(kind).await?;
        self.issue(kind, Action::Rollback, target, None).await
    }

    /// Validates `bytes` as `kind` and asks every instance to run it as a
    /// shadow of its live version (for `duration`, or until stopped).
    pub async fn shadow(
        &self,
        kind: PluginKind,
        bytes: Vec<u8>,
        duration: Option<Duration>,
    ) -> Result<Issued, IssueError> {
        if self.store.shadow(kind).await?.is_some() {
            return Err(IssueError::ShadowRunning(kind));
        }
        let (sha256, name, version) = self.validated(kind, bytes).await?;
        let _one = self.busy.lock().await;
        self.store.set_shadow(kind, Some(&sha256)).await?;
        let seconds = duration.map(|d| d.as_secs_f64());
        let mut issued = self.issue(kind, Action::Shadow, sha256, seconds).await?;
        (issued.name, issued.version) = (Some(name), Some(version));
        Ok(issued)
    }

    /// Asks every instance to end its shadow of `kind`.
    pub async fn stop_shadow(&self, kind: PluginKind) -> Result<Issued, IssueError> {
        let _one = self.busy.lock().await;
        self.store.set_shadow(kind, None).await?;
        self.issue(kind, Action::ShadowStop, String::new(), None)
            .await
    }

    /// Asks every instance to make the fleet shadow's candidate live.
    pub async fn promote(&self, kind: PluginKind) -> Result<Issued, IssueError> {
        let _one = self.busy.lock().await;
        let sha256 = self
            .store
            .shadow(kind)
            .await?
            .ok_or(IssueError::NoShadow(kind))?;
        self.store.push_stack(kind, &sha256).await?;
        self.store.set_shadow(kind, None).await?;
        self.issue(kind, Action::Promote, sha256, None).await
    }

    /// Validated and stored: its SHA-256, name and version.
    async fn validated(
        &self,
        kind: PluginKind,
        bytes: Vec<u8>,
    ) -> Result<(String, String, String), IssueError> {
        let (component, info) = validate(self.engine.clone(), kind, bytes.clone()).await?;
        self.store.put_blob(&component.sha256, &bytes).await?;
        Ok((component.sha256.clone(), info.name, info.version))
    }

    /// Signs, records and announces one command.
    async fn issue(
        &self,
        kind: PluginKind,
        action: Action,
        sha256: String,
        for_secs: Option<f64>,
    ) -> Result<Issued, IssueError> {
        let command = Command {
            kind,
            action,
            sha256,
            generation: self.store.next_generation(kind).await?,
            issued_at: health_time(Utc::now()),
            issued_by: self.issued_by.clone(),
            for_secs,
        };
        let signed = self.key.sign(&command);
        if action.sets_desired() {
            self.store.set_desired(kind, &signed).await?;
        }
        let announced_to = self.store.announce(&self.control, &signed).await?;
        tracing::info!(%kind, action = action.as_str(), generation = command.generation, sha256 = %command.sha256, announced_to, "fleet command issued");
        Ok(Issued {
            kind,
            action: action.as_str(),
            generation: command.generation,
            sha256: command.sha256,
            name: None,
            version: None,
            announced_to,
        })
    }
}
