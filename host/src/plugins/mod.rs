//! The plugin runtime: loads WebAssembly components that implement the
//! `tickstock:plugins` worlds (`wit/tickstock.wit`) and calls them safely.
//!
//! - [`PluginEngine`] owns the wasmtime engine (component model on, async
//!   off), the epoch ticker that enforces per-call deadlines, the linker
//!   (the host's `log` plus an inert WASI 0.2, see [`wasi`]) and the
//!   on-disk cache of compiled components ([`cache`]).
//! - [`PluginEngine::load`] turns bytes into a [`LoadedComponent`]: header
//!   check, compile or cache hit, contract check ([`compat`]: right world,
//!   compatible major version, no ungranted imports), pre-instantiation.
//! - [`NormalizerPlugin`] and [`HealthPlugin`] are long-lived instances with
//!   typed, batch-taking calls. Every call runs under the deadline and the
//!   memory cap; a trap, deadline or limit comes back as a [`CallError`] and
//!   the broken instance is replaced by a fresh one from the same component.
//!
//! - [`runner::PluginThread`] runs one instance on its own OS thread on live
//!   traffic, with an inbox for work and a swap path between two items.
//!
//! Instances are not `Sync`: each lives on the one thread that calls it.

pub mod bindings;
pub mod cache;
pub mod compat;
pub mod conformance;
mod ctx;
pub mod diff;
pub mod embedded;
mod engine;
mod error;
mod health;
pub mod instance;
pub mod limits;
mod normalizer;
pub mod registry;
pub mod runner;
pub mod stats;
mod stderr;
pub mod wasi;

pub use crate::contract::{PluginKind, WIT_ACCEPTED, WIT_MAJOR, WIT_PACKAGE, WIT_VERSION};
pub use bindings::{
    EventKind, HealthReport, HealthStatus, HostState, Metric, MetricValue, Normalized,
    NormalizedTick, PluginInfo, SkipReason, Skipped, Tick,
};
pub use cache::CacheOutcome;
pub use engine::{Limits, LoadedComponent, PluginEngine, EPOCH_TICK, PERF_MAP_ENV};
pub use error::{CallError, LoadError};
pub use health::{HealthExports, HealthPlugin};
pub use instance::{CallClock, Plugin, World};
pub use normalizer::{NormalizerExports, NormalizerPlugin};
pub use registry::{ActivePlugin, PluginRegistry};
pub use stats::CallStats;

/// A stable snake_case label for a skip reason (metrics, logs, JSON).
pub fn skip_reason_label(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::Status => "status",
        SkipReason::UnknownEvent => "unknown_event",
        SkipReason::Malformed => "malformed",
        SkipReason::NotPublished => "not_published",
    }
}

/// `healthy`, `degraded` or `error`, as in the wire contract.
pub fn health_status_label(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Degraded => "degraded",
        HealthStatus::Error => "error",
    }
}
