#![allow(clippy::expect_used, clippy::unwrap_used)] // a build script fails by panicking
//! Builds the default plugin components the host embeds (`plugins/*`, for
//! `wasm32-wasip2`) into `target/guests`; the embedded defaults read them
//! with `include_bytes!`. Test-only guests are built by `tests/artifacts`,
//! never here, so a release build compiles none of them.

#[path = "build_guests.rs"]
mod build_guests;

use build_guests::Guest;

const GUESTS: &[Guest] = &[
    Guest {
        package: "tickstock-normalizer",
        features: "",
        name: "normalizer",
    },
    Guest {
        package: "tickstock-health",
        features: "",
        name: "health",
    },
];

fn main() {
    build_guests::main(1, "guests", GUESTS);
    pin_versions();
}

/// Exports the versions `tickstock plugin new` pins in the projects it
/// writes: the toolchain of `rust-toolchain.toml` and the highest locked
/// version of each guest dependency in `Cargo.lock`.
fn pin_versions() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |name: &str| {
        std::fs::read_to_string(root.join(name))
            .unwrap_or_else(|e| panic!("reading {name} of the workspace: {e}"))
    };
    let toolchain = read("rust-toolchain.toml");
    let rust = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .expect("rust-toolchain.toml names a channel")
        .trim_matches('"');
    println!("cargo:rustc-env=TICKSTOCK_PIN_RUST={rust}");
    let lock = read("Cargo.lock");
    for (package, var) in [
        ("wit-bindgen", "WIT_BINDGEN"),
        ("serde", "SERDE"),
        ("serde_json", "SERDE_JSON"),
        ("zmij", "ZMIJ"),
        ("itoa", "ITOA"),
    ] {
        let version = lock
            .split("[[package]]")
            .filter_map(|entry| {
                let mut lines = entry.lines().map(str::trim);
                let name = lines
                    .find_map(|l| l.strip_prefix("name = "))?
                    .trim_matches('"');
                let version = lines
                    .find_map(|l| l.strip_prefix("version = "))?
                    .trim_matches('"');
                (name == package).then(|| version.to_string())
            })
            .max_by_key(|v| {
                v.split('.')
                    .map(|n| n.parse::<u64>().unwrap_or(0))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_else(|| panic!("{package} is not in Cargo.lock"));
        println!("cargo:rustc-env=TICKSTOCK_PIN_{var}={version}");
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("rust-toolchain.toml").display()
    );
}
