//! A test-only normalizer: the bundled normalizer's parser
//! (`plugins/normalizer/src/massive.rs`, included as it is) built against a
//! frozen copy of the 1.0.0 contract in `wit/`. It exports only
//! `normalize@1.0.0`, as every component built before 1.1.0 does: the host
//! must load it and call it through the plain interface.

#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({ world: "normalizer", path: "wit" });
    use super::Component;
    export!(Component with_types_in crate::bindings);
}

#[path = "../../../../plugins/normalizer/src/massive.rs"]
#[allow(dead_code)]
mod massive;

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
