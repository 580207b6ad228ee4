#![allow(clippy::expect_used, clippy::unwrap_used)] // a build script fails by panicking
//! Builds the test-only guest components into `target/test-guests` (its own
//! directory: the host's build script builds the same plugin crates without
//! features into `target/guests`, and both may run at once).

#[path = "../../host/build_guests.rs"]
mod build_guests;

use build_guests::Guest;

const GUESTS: &[Guest] = &[
    Guest {
        package: "tickstock-test-misbehave",
        features: "",
        name: "misbehave",
    },
    Guest {
        package: "tickstock-test-misbehave",
        features: "packed",
        name: "misbehave_packed",
    },
    Guest {
        package: "tickstock-test-next-major",
        features: "",
        name: "next_major",
    },
    // Versions of the real plugins, for the hot-swap tests.
    Guest {
        package: "tickstock-normalizer",
        features: "test-next",
        name: "normalizer_next",
    },
    Guest {
        package: "tickstock-normalizer",
        features: "test-trap",
        name: "normalizer_trap",
    },
    Guest {
        package: "tickstock-health",
        features: "test-next",
        name: "health_next",
    },
    // The minor-version compatibility test: a 1.0.0 component.
    Guest {
        package: "tickstock-test-contract-1-0",
        features: "",
        name: "contract_1_0",
    },
    Guest {
        package: "tickstock-test-odd-import",
        features: "",
        name: "odd_import",
    },
    // Sandbox faults.
    Guest {
        package: "tickstock-test-misbehave",
        features: "loop-at-start",
        name: "loop_at_start",
    },
    Guest {
        package: "tickstock-normalizer",
        features: "test-sleep",
        name: "normalizer_sleep",
    },
    Guest {
        package: "tickstock-health",
        features: "test-faults",
        name: "health_faults",
    },
    Guest {
        package: "tickstock-health",
        features: "test-sleep-in-check",
        name: "health_sleep_in_check",
    },
    Guest {
        package: "tickstock-health",
        features: "test-loop-import",
        name: "health_loop_import",
    },
];

fn main() {
    build_guests::main(2, "test-guests", GUESTS);
    hand_written("budget");
}

/// Turns `wat/NAME.wat` (a core module following the canonical ABI of the
/// normalizer world) into a component against `wit/`, and exports its
/// path as `TICKSTOCK_COMPONENT_<NAME>`.
fn hand_written(name: &str) {
    let manifest =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let wat_file = manifest.join("wat").join(format!("{name}.wat"));
    let wit_dir = manifest.join("../../wit");
    println!("cargo:rerun-if-changed={}", wat_file.display());
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(&wit_dir).expect("parsing wit/");
    let world = resolve
        .select_world(&[package], Some("normalizer"))
        .expect("the normalizer world");
    let mut module = wat::parse_file(&wat_file).expect("parsing the .wat file");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embedding the component type");
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("reading the module")
        .validate(true)
        .encode()
        .expect("encoding the component");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"))
        .join(format!("{name}.wasm"));
    std::fs::write(&out, component).expect("writing the component");
    println!(
        "cargo:rustc-env=TICKSTOCK_COMPONENT_{}={}",
        name.to_uppercase(),
        out.display()
    );
}
