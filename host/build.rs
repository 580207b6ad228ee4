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
}
