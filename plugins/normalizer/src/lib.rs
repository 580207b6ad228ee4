//! The TickStock **normalizer** plugin for Massive (Polygon.io) stocks feeds.
//!
//! This crate compiles to a WebAssembly component implementing the
//! `tickstock:plugins/normalizer` world (see `wit/tickstock.wit`). The host
//! hands it one raw WebSocket frame at a time, exactly as received, and
//! publishes each returned tick's `payload` verbatim on
//! `PREFIX:market:ticks`. The plugin therefore owns the wire schema: a new
//! payload field ships as a new plugin version, with no host change.
//!
//! Version 1.0.0 maps:
//! - `T` (trade): price `p`, volume `s`, timestamp `t`, sequence `q`;
//! - `A` / `AM` (aggregates): price `c` (close), volume `v`, timestamp `e`
//!   (window end);
//! - `Q` (quote): parsed and validated, reported as `not-published`;
//! - `status`, unknown `ev`, and anything malformed: reported in `skipped`,
//!   never fatal.
//!
//! It is also the example plugin authors copy: the parsing lives in
//! [`massive`] as plain Rust (so it is unit-tested and benchmarked natively),
//! and this file only adapts it to the WIT types.
//!
//! ```
//! let out = tickstock_normalizer::normalize_frame(
//!     r#"[{"ev":"T","sym":"MSFT","p":114.125,"s":100,"t":1536036818784,"q":3681328}]"#,
//! );
//! assert_eq!(out.ticks.len(), 1);
//! assert_eq!(
//!     out.ticks[0].payload,
//!     r#"{"type":"market_tick","symbol":"MSFT","price":114.125,"volume":100,"timestamp":1536036818784,"source":"massive"}"#
//! );
//! ```

pub mod massive;
pub mod packed; // scaffold: drop

#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        // scaffold: use world: "normalizer",
        world: "normalizer-fast", // scaffold: drop
        path: "../../wit",
    });

    // Only the wasm build exports the component's entry points; native
    // builds (unit tests, the host's benchmark) call the Rust functions.
    #[cfg(target_arch = "wasm32")]
    mod export {
        use super::super::Component;
        crate::bindings::export!(Component with_types_in crate::bindings);
    }
}

pub use bindings::tickstock::plugins::types::{
    EventKind, Normalized, NormalizedTick, PluginInfo, SkipReason, Skipped, Tick,
};

// `tickstock plugin new` writes this crate out as a template: lines marked
// `scaffold: drop` (and blocks between `scaffold: drop-begin` and `-end`)
// are left out, and `// scaffold: use CODE` lines become CODE.

/// The plugin's name, reported through `info`.
// scaffold: use pub const NAME: &str = "{{name}}";
pub const NAME: &str = "massive-stocks"; // scaffold: drop
/// The plugin's version, reported through `info`: the crate version.
// scaffold: drop-begin
// (Test-only builds of this repository report their own.)
pub const VERSION: &str = if cfg!(feature = "test-next") {
    "1.1.0"
} else if cfg!(feature = "test-trap") {
    "1.0.1-trap"
} else if cfg!(feature = "test-sleep") {
    "1.0.1-sleep"
} else {
    env!("CARGO_PKG_VERSION")
};
// scaffold: drop-end
// scaffold: use pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Normalizes one raw Massive frame. This is what the component's
/// `normalize-frame` export runs; it is public so the host's benchmark can run
/// the very same code natively.
pub fn normalize_frame(frame: &str) -> Normalized {
    massive::normalize(frame)
}

struct Component;

impl bindings::exports::tickstock::plugins::normalize::Guest for Component {
    fn info() -> PluginInfo {
        PluginInfo {
            name: NAME.to_string(),
            version: VERSION.to_string(),
        }
    }

    fn normalize_frame(frame: String) -> Normalized {
        test_faults(&frame); // scaffold: drop
        normalize_frame(&frame)
    }
}
// scaffold: drop-begin

impl bindings::exports::tickstock::plugins::normalize_packed::Guest for Component {
    fn normalize_frame_packed(
        frame: String,
    ) -> bindings::exports::tickstock::plugins::normalize_packed::PackedNormalized {
        test_faults(&frame);
        packed::normalize_frame_packed(&frame)
    }
}

/// The test builds' faults, on both exports (the host calls the packed one
/// when it is there).
fn test_faults(frame: &str) {
    if cfg!(feature = "test-trap") && frame.contains("\"TRAPME\"") {
        panic!("test-trap build: refusing a frame with TRAPME");
    }
    if cfg!(feature = "test-trap") && frame.contains("\"SPINME\"") {
        // Runs until the host's deadline stops it.
        let mut n: u64 = 0;
        while std::hint::black_box(n) != u64::MAX {
            n = n.wrapping_add(1);
        }
    }
    if cfg!(feature = "test-sleep") && frame.contains("\"SLEEPME\"") {
        // What a blocking call in ordinary code does to a plugin.
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
// scaffold: drop-end
