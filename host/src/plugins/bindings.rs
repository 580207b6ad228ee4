//! Host-side bindings generated from `wit/` (the same files the guests use).
//!
//! One `bindgen!` covers both worlds through a host-only world that includes
//! them, so the shared `types` are generated once.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    inline: "
        package tickstock:host;
        world plugins {
            include tickstock:plugins/normalizer@1.0.0;
            include tickstock:plugins/health@1.0.0;
        }
    ",
    path: "../wit",
    world: "tickstock:host/plugins",
});

pub use self::exports::tickstock::plugins::health_metrics;
pub use self::exports::tickstock::plugins::normalize;
pub use self::tickstock::plugins::types::{
    EventKind, HealthReport, HealthStatus, HostState, LogLevel, Metric, MetricValue, Normalized,
    NormalizedTick, PluginInfo, SkipReason, Skipped, Tick,
};
