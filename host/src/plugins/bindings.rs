//! Host-side bindings generated from `wit/` (the same files the guests use).
//!
//! One `bindgen!` covers both worlds through a host-only world that includes
//! them, so the shared `types` are generated once. It includes the 1.1.0
//! `-fast` worlds, which add the optional packed interfaces; the host looks
//! those up per component and falls back to the plain ones (all a 1.0.0
//! component has: wasmtime matches `@1.0.0` exports to `@1.1.0` names).

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    inline: "
        package tickstock:host;
        world plugins {
            include tickstock:plugins/normalizer-fast@1.1.0;
            include tickstock:plugins/health-fast@1.1.0;
        }
    ",
    path: "../wit",
    world: "tickstock:host/plugins",
});

pub use self::exports::tickstock::plugins::health_metrics;
pub use self::exports::tickstock::plugins::health_packed;
pub use self::exports::tickstock::plugins::normalize;
pub use self::exports::tickstock::plugins::normalize_packed;
pub use self::tickstock::plugins::types::{
    EventKind, HealthReport, HealthStatus, HostState, LogLevel, Metric, MetricValue, Normalized,
    NormalizedTick, PluginInfo, SkipReason, Skipped, Tick,
};
