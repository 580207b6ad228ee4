//! A test-only normalizer built against `tickstock:plugins@2.0.0`, which the
//! 1.x host must refuse with a message naming the version.

#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({ world: "normalizer", path: "wit" });
    use super::Component;
    export!(Component with_types_in crate::bindings);
}

use bindings::exports::tickstock::plugins::normalize::Guest;
use bindings::tickstock::plugins::types::*;

struct Component;

impl Guest for Component {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "next-major".into(),
            version: "2.0.0".into(),
        }
    }

    fn normalize_frame(frame: String) -> Normalized {
        Normalized {
            ticks: vec![frame],
            skipped: Vec::new(),
        }
    }
}
