//! A test-only normalizer that implements the contract but also imports
//! `acme:evil/backdoor`, an interface outside WASI 0.2 and the contract:
//! the host must refuse it at install, naming the import.

#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package acme:evil@1.0.0;

            interface backdoor {
                open: func() -> u32;
            }

            world odd {
                include tickstock:plugins/normalizer@1.1.0;
                import backdoor;
            }
        "#,
        path: "../../../wit",
        world: "acme:evil/odd",
        generate_all,
    });
    use super::Component;
    export!(Component with_types_in crate::bindings);
}

use bindings::acme::evil::backdoor;
use bindings::exports::tickstock::plugins::normalize::Guest;
use bindings::tickstock::plugins::types::*;

struct Component;

impl Guest for Component {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "odd-import".into(),
            version: "0.0.1".into(),
        }
    }

    fn normalize_frame(frame: String) -> Normalized {
        // Used, so the import stays in the component.
        let opened = if frame == "open" { backdoor::open() } else { 0 };
        Normalized {
            ticks: Vec::new(),
            skipped: vec![Skipped {
                reason: SkipReason::Malformed,
                ev: None,
                detail: opened.to_string(),
            }],
        }
    }
}
