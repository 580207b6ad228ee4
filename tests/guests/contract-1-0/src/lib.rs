//! A test-only normalizer: the bundled normalizer's parser
//! (`plugins/normalizer/src/massive.rs` and `massive/`, included as they are) built against a
//! frozen copy of the 1.0.0 contract in `wit/`. It exports only
//! `normalize@1.0.0`, as every component built before 1.1.0 does: the host
//! must load it and call it through the plain interface.

#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({ world: "normalizer", path: "wit" });
    use super::Component;
    export!(Component with_types_in crate::bindings);
}

// The parser's files as they are: `massive.rs` and its `massive/` children
// (an inline module with a path, so that `mod scan;` inside resolves to
// `massive/scan.rs` as it does in the real crate).
#[path = "../../../../plugins/normalizer/src"]
#[allow(dead_code)]
mod normalizer_src {
    pub mod massive;
}
use normalizer_src::massive;

use bindings::exports::tickstock::plugins::normalize::Guest;
pub use bindings::tickstock::plugins::types::{
    EventKind, Normalized, NormalizedTick, PluginInfo, SkipReason, Skipped, Tick,
};

struct Component;

impl Guest for Component {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "massive-stocks-1-0".into(),
            version: "1.0.0".into(),
        }
    }

    fn normalize_frame(frame: String) -> Normalized {
        massive::normalize(&frame)
    }
}
