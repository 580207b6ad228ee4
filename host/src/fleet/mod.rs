//! The fleet: one install, rollback or shadow that reaches every instance
//! sharing a Redis and a channel prefix (`ingest`, `process`, `run` and
//! `dashboard` processes, on one host or many), and a picture of which
//! instance runs what.
//!
//! A command's path:
//!
//! 1. The admin API of any role that serves HTTP hands the upload to the
//!    [`Issuer`]: it validates the component as an install would, stores
//!    its bytes under their SHA-256, takes the kind's next generation,
//!    signs the [`Command`] with the fleet key (HMAC-SHA256), writes it as
//!    the kind's desired state and announces it on `PREFIX:control`.
//! 2. Every instance's [`Agent`] verifies the signature, refuses a
//!    generation not newer than the last it took (a replay), fetches the
//!    bytes, checks their hash, and hands them to its own plugin manager,
//!    which validates them again and swaps with the usual guarantees (no
//!    tick lost, state carried over, automatic rollback). It reports the
//!    outcome on `PREFIX:plugins` (`fleet_applied`, with its instance id,
//!    role, host name and active SHA-256). An instance started later takes
//!    the desired state at start-up.
//! 3. Every instance writes a [`Heartbeat`] every two seconds; the
//!    [`Roster`] (in `tickstock plugins list`, `GET /admin/plugins`, `GET
//!    /api/fleet` and the dashboard) shows the live ones and whether each
//!    runs the desired versions.
//!
//! The fleet key (`TICKSTOCK_FLEET_KEY`, from the environment only) is its
//! own secret, never the admin token. An instance without one ignores the
//! control channel (it says so once at start-up) but still shows in the
//! roster. The Redis keys are listed in [`store`].

pub mod agent;
pub mod command;
pub mod issuer;
pub mod roster;
pub mod store;

use std::sync::Arc;

pub use agent::{Agent, Identity};
pub use command::{Action, Command, FleetKey, Rejection, Signed};
pub use issuer::{IssueError, Issued, Issuer, RosterReader};
pub use roster::{Heartbeat, Roster};
pub use store::FleetStore;

use crate::bus::Bus;
use crate::manager::PluginManager;
use crate::plugins::PluginEngine;
use crate::secret::Secret;

/// The fleet parts of one process.
pub struct Fleet {
    /// Takes commands for this process's plugins; writes its heartbeat.
    pub agent: Arc<Agent>,
    /// Reads the roster.
    pub roster: Arc<RosterReader>,
    /// Issues commands (only with the fleet key).
    pub issuer: Option<Arc<Issuer>>,
}

/// What a process needs to join the fleet.
pub struct Joining<'a> {
    /// The Redis the bus uses (no fleet without one).
    pub redis_url: Option<&'a Secret>,
    /// The fleet key, if the process has one.
    pub key: Option<FleetKey>,
    /// The bus (its prefix names the fleet).
    pub bus: &'a Bus,
    /// Validates uploads.
    pub engine: &'a PluginEngine,
    /// This process's plugins.
    pub manager: &'a Arc<PluginManager>,
    /// `run`, `ingest`, `process` or `dashboard`.
    pub role: &'a str,
}

impl Fleet {
    /// Joins the fleet of the bus's prefix: starts the agent (until
    /// `cancel`). `None` without Redis.
    pub fn join(
        joining: Joining<'_>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Option<Fleet>> {
        let Some(url) = joining.redis_url else {
            if joining.key.is_some() {
                tracing::warn!("TICKSTOCK_FLEET_KEY is ignored: a fleet needs Redis (--redis-url)");
            }
            return Ok(None);
        };
        let bus = joining.bus;
        let store = Arc::new(FleetStore::new(url, bus.channels().prefix())?);
        let identity = Identity::new(joining.role);
        let instance_id = identity.instance_id.clone();
        let agent = Agent::new(
            identity,
            joining.key.clone(),
            store.clone(),
            bus.clone(),
            joining.manager.clone(),
        );
        agent.start(cancel);
        let issuer = joining.key.clone().map(|key| {
            Arc::new(Issuer::new(
                key,
                store.clone(),
                joining.engine.clone(),
                bus.channels().control(),
                instance_id,
            ))
        });
        Ok(Some(Fleet {
            agent,
            roster: Arc::new(RosterReader::new(store, joining.key)),
            issuer,
        }))
    }
}
