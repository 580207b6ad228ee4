#![allow(clippy::expect_used, clippy::unwrap_used)] // a build script fails by panicking
//! Builds the plugin components the host embeds (and the test-only guests
//! its tests load) by running cargo for `wasm32-wasip2`, the way wasmtime's
//! and Spin's test-program crates do.
//!
//! The guests build into their own target directory (`target/guests`), so
//! the nested cargo never waits on the outer one's lock and every host
//! profile (dev, release, bench, clippy) shares one guest build. Each
//! component's path is passed to the host crate as an environment variable:
//! `TICKSTOCK_COMPONENT_<NAME>` (the embedded defaults use `include_bytes!`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One component to build: cargo package, features, and the output name.
struct Guest {
    package: &'static str,
    features: &'static str,
    name: &'static str,
}

const GUESTS: &[Guest] = &[
    // The embedded defaults.
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
    // Test-only guests (loaded by the tests from disk, never embedded).
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
    // Test-only versions of the real plugins, for the hot-swap tests.
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
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    for dir in ["wit", "plugins", "tests/guests", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = root.join("target").join("guests");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));

    for guest in GUESTS {
        let built = build(&root, &target_dir, guest);
        let dest = out_dir.join(format!("{}.wasm", guest.name));
        std::fs::copy(&built, &dest)
            .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", built.display(), dest.display()));
        println!(
            "cargo:rustc-env=TICKSTOCK_COMPONENT_{}={}",
            guest.name.to_uppercase(),
            dest.display()
        );
    }
}

fn build(root: &Path, target_dir: &Path, guest: &Guest) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            guest.package,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        // Small, stripped components; the guests' own profile, not the host's.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3");
    if !guest.features.is_empty() {
        cmd.args(["--features", guest.features]);
    }
    // Settings of the outer build that must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {}: {e}", guest.package));
    assert!(
        status.success(),
        "building {} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)",
        guest.package
    );
    let file = format!("{}.wasm", guest.package.replace('-', "_"));
    target_dir.join("wasm32-wasip2").join("release").join(file)
}
