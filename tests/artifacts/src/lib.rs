//! Test-only guest components, built by this crate's build script for
//! `wasm32-wasip2` (the host's tests depend on this crate; release builds
//! of the host never build it). Each function reads one component.

/// A normalizer that loops / allocates / traps on request.
pub fn misbehave() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_MISBEHAVE"))
}

/// The same, also exporting `normalize-packed` (which the host then calls),
/// with bad spans on request.
pub fn misbehave_packed() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_MISBEHAVE_PACKED"))
}

/// A normalizer built against `tickstock:plugins@2.0.0`.
pub fn next_major() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_NEXT_MAJOR"))
}

/// The normalizer at 1.1.0: adds `sequence` to the payload.
pub fn normalizer_next() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_NORMALIZER_NEXT"))
}

/// The normalizer at 1.0.1-trap: traps on frames mentioning TRAPME, spins
/// until the deadline on frames mentioning SPINME.
pub fn normalizer_trap() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_NORMALIZER_TRAP"))
}

/// The health plugin at 1.1.0: adds `symbols_seen_total`.
pub fn health_next() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_HEALTH_NEXT"))
}

/// The misbehaving normalizer with a constructor that spins at
/// instantiation.
pub fn loop_at_start() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_LOOP_AT_START"))
}

/// The normalizer at 1.0.1-sleep: sleeps an hour on frames mentioning
/// SLEEPME (it passes the conformance check).
pub fn normalizer_sleep() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_NORMALIZER_SLEEP"))
}

/// The health plugin at 1.0.1-faults: misbehaves on special symbols (see
/// `plugins/health/src/test_faults.rs`).
pub fn health_faults() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_HEALTH_FAULTS"))
}

/// A health plugin whose `observe` always sleeps (it meets the conformance
/// check).
pub fn health_sleep_in_check() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_HEALTH_SLEEP_IN_CHECK"))
}

/// A health plugin whose `import-state` spins for ever.
pub fn health_loop_import() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_HEALTH_LOOP_IMPORT"))
}

/// The bundled normalizer's parser built against the frozen 1.0.0
/// contract: exports `normalize@1.0.0` and no packed interface.
pub fn contract_1_0() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_CONTRACT_1_0"))
}

/// A normalizer that also imports `acme:evil/backdoor`.
pub fn odd_import() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_ODD_IMPORT"))
}

/// A hand-written normalizer with two memories and a growable table (see
/// `wat/budget.wat`).
pub fn budget() -> Vec<u8> {
    read(env!("TICKSTOCK_COMPONENT_BUDGET"))
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading the test guest {path}: {e}"))
}
