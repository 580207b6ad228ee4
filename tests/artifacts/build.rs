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
}
