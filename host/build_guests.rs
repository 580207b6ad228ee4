//! Builds guest components for `wasm32-wasip2` by running cargo, the way
//! wasmtime's and Spin's test-program crates do. Shared by the build
//! scripts of the host (the embedded default plugins) and of
//! `tests/artifacts` (the test-only guests), each with its own target
//! directory so that the two never overwrite each other's output.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Cargo configuration for the guest builds, relative to the workspace.
const GUEST_CARGO_CONFIG: &str = "host/templates/rust-cargo-config.toml";

/// One component to build: cargo package, features, and the output name.
pub struct Guest {
    /// The cargo package.
    pub package: &'static str,
    /// Features to enable (comma-separated), or empty.
    pub features: &'static str,
    /// The name it is published under: `TICKSTOCK_COMPONENT_<NAME>`.
    pub name: &'static str,
}

/// Fails the build at once, with the command that fixes it, when the
/// `wasm32-wasip2` target is missing: otherwise cargo would compile every
/// host dependency first and then stop with "can't find crate for std".
pub fn require_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if !libdir.is_some_and(|dir| dir.exists()) {
        panic!(
            "\n\nThe wasm32-wasip2 target is not installed for this toolchain; the \
             default plugins are built for it.\nRun `rustup toolchain install` in the \
             repository (it installs what rust-toolchain.toml names), or \
             `rustup target add wasm32-wasip2`, then build again.\n\n"
        );
    }
}

/// The build script's whole job: fail fast without the target, then build
/// `guests` into `target/SUBDIR` of the workspace, which lies `depth`
/// directories above the package.
pub fn main(depth: usize, subdir: &str, guests: &[Guest]) {
    require_wasm_target();
    let mut root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    for _ in 0..depth {
        root = root
            .parent()
            .expect("the package lies inside the workspace")
            .to_path_buf();
    }
    let target_dir = root.join("target").join(subdir);
    build_all(&root, &target_dir, guests);
}

/// Builds every guest into `target_dir`, copies each component into
/// `OUT_DIR` and exports its path as `TICKSTOCK_COMPONENT_<NAME>`.
pub fn build_all(root: &Path, target_dir: &Path, guests: &[Guest]) {
    for dir in [
        "wit",
        "plugins",
        "tests/guests",
        "Cargo.toml",
        "Cargo.lock",
        GUEST_CARGO_CONFIG,
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    for guest in guests {
        let built = build(root, target_dir, guest);
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
        // The rustflags for wasm32-wasip2 that `tickstock plugin new` gives
        // authors too: one file, so the two never drift apart.
        .arg("--config")
        .arg(root.join(GUEST_CARGO_CONFIG))
        // Small, stripped components; the guests' own profile, not the host's.
        // Whole-program optimisation (fat LTO, one codegen unit) makes the
        // default plugins 3-4% faster per tick (issue 12, P2) for a few
        // seconds of build time; the inlining in GUEST_CARGO_CONFIG another
        // ~14%.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");
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
