//! The roles: `ingest` (feed -> normalizer -> ticks), `process` (ticks ->
//! health -> session and health events) and `dashboard` (events -> status
//! API and page, in [`crate::web`]). `run` starts all three in one process.
//! Roles talk only through the [`crate::bus::Bus`], so with Redis each
//! restarts on its own. This module wires the parts together; the parts
//! themselves live in [`crate::pipeline`], [`crate::health_loop`],
//! [`crate::manager`] and [`crate::web`].

mod context;
pub mod ingest;
mod plugin;
pub mod process;
mod run;
mod signal;

pub use crate::manager::RunningPlugin;
pub use context::{bus, Fatal, RoleContext};
pub use plugin::{load_plugin, plugin_file, plugin_source, start_plugin};
pub use run::{run_all, run_dashboard, run_ingest, run_process, Host};
pub use signal::shutdown_signal;
