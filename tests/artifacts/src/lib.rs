//! Test-only guest components, built by this crate's build script for
//! `wasm32-wasip2` (the host's tests depend on this crate; release builds
//! of the host never build it). Each function reads one component.

/// A normalizer that loops / allocates / traps on request.
pub fn misbehave() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_MISBEHAVE"))
}

/// A normalizer built against `tickstock:plugins@2.0.0`.
pub fn next_major() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_NEXT_MAJOR"))
}

/// The normalizer at 1.1.0: adds `sequence` to the payload.
pub fn normalizer_next() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_NORMALIZER_NEXT"))
}

/// The normalizer at 1.0.1-trap: traps on frames mentioning TRAPME.
pub fn normalizer_trap() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_NORMALIZER_TRAP"))
}

/// The health plugin at 1.1.0: adds `symbols_seen_total`.
pub fn health_next() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_HEALTH_NEXT"))
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading the test guest {path}: {e}"))
}
