//! Plugin errors, split by what a caller does about them.

use thiserror::Error;

/// Why a component could not be loaded. Every variant's message says what
/// is wrong in terms an operator can act on.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component at all.
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// The component is valid WebAssembly but failed to compile.
    #[error("the component failed to compile: {0}")]
    Compile(String),
    /// The component implements the other plugin world.
    #[error("this is a {found} plugin (it exports {export}), not a {expected} plugin")]
    WrongKind {
        /// The kind the caller asked for.
        expected: &'static str,
        /// The kind the component implements.
        found: &'static str,
        /// The export that gave it away.
        export: String,
    },
    /// Built against an incompatible major version of the contract.
    #[error(
        "built against {package}@{found}, but this host accepts {package}@{accepted} \
         (same major version)"
    )]
    IncompatibleVersion {
        /// The contract package, `tickstock:plugins`.
        package: &'static str,
        /// The version the component was built against.
        found: String,
        /// The range this host accepts.
        accepted: &'static str,
    },
    /// The component exports nothing this host recognises.
    #[error("it does not export {wanted}; its exports are: {found}")]
    MissingExport {
        /// The interface the host looked for.
        wanted: String,
        /// What the component does export.
        found: String,
    },
    /// It imports something the host does not grant.
    #[error("it imports {0}, which this host does not provide (plugins get tickstock:plugins/host@1.x and an inert WASI 0.2: wasi:io, clocks, random, cli, filesystem, sockets)")]
    UnsupportedImport(String),
    /// Linking or instantiating failed.
    #[error("the component could not be instantiated: {0}")]
    Instantiate(String),
    /// Calling `info` after instantiation failed.
    #[error("the component's info() call failed: {0}")]
    Info(#[source] CallError),
}

/// Why a call into a plugin failed. After any of these the broken instance
/// has been replaced by a fresh one from the same component.
#[derive(Debug, Error)]
pub enum CallError {
    /// The call ran past its epoch deadline (a loop, or far too much work).
    #[error("{plugin} exceeded its {deadline_ms} ms deadline and was stopped")]
    Deadline {
        /// `name@version` of the plugin.
        plugin: String,
        /// The deadline that was exceeded.
        deadline_ms: u64,
    },
    /// The guest tried to grow its memory past the cap.
    #[error(
        "{plugin} exceeded its memory limit of {limit_bytes} bytes (asked for {wanted_bytes})"
    )]
    MemoryLimit {
        /// `name@version` of the plugin.
        plugin: String,
        /// The cap.
        limit_bytes: usize,
        /// What the guest asked for.
        wanted_bytes: usize,
    },
    /// The guest trapped (a panic, `unreachable`, out-of-bounds access, ...).
    #[error("{plugin} trapped: {message}")]
    Trap {
        /// `name@version` of the plugin.
        plugin: String,
        /// The trap and its backtrace, as wasmtime reports it.
        message: String,
    },
    /// The result was larger than the host takes (see
    /// [`crate::plugins::limits`]).
    #[error("{plugin} returned too much: {what}")]
    Oversized {
        /// `name@version` of the plugin.
        plugin: String,
        /// What was too large.
        what: String,
    },
    /// The result does not hold together: a packed result whose spans
    /// fall outside its text or cut a character.
    #[error("{plugin} returned a malformed result: {what}")]
    BadResult {
        /// `name@version` of the plugin.
        plugin: String,
        /// What is wrong with it.
        what: String,
    },
    /// The call did not come back in time and its thread was abandoned
    /// (see [`super::runner`]); this is what the call returns if it ever
    /// does come back.
    #[error("{plugin} did not return and its thread was abandoned")]
    Abandoned {
        /// `name@version` of the plugin.
        plugin: String,
    },
    /// The replacement instance could not be created either.
    #[error("{plugin} failed and could not be re-instantiated: {message}")]
    Reinstantiate {
        /// `name@version` of the plugin.
        plugin: String,
        /// What went wrong.
        message: String,
    },
}

impl CallError {
    /// A short, stable label for metrics (`deadline`, `memory`, `trap`,
    /// `oversized`, `bad_result`, `abandoned`, `reinstantiate`).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Deadline { .. } => "deadline",
            CallError::MemoryLimit { .. } => "memory",
            CallError::Trap { .. } => "trap",
            CallError::Abandoned { .. } => "abandoned",
            CallError::Oversized { .. } => "oversized",
            CallError::BadResult { .. } => "bad_result",
            CallError::Reinstantiate { .. } => "reinstantiate",
        }
    }
}
