//! What a plugin author does, as commands: scaffold a project with
//! `tickstock plugin new`, build it (cargo for Rust, componentize-py for
//! Python), and run `tickstock plugin test` on the result.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tickstock_bin;

/// The componentize-py version the Python template names (`.ci/run`
/// installs it).
pub const COMPONENTIZE_PY: &str = tickstock::author::scaffold::COMPONENTIZE_PY;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ lies in the repository")
        .to_path_buf()
}

/// `tickstock plugin new --kind KIND --lang LANG DIR/NAME`; the project.
pub fn scaffold(dir: &Path, kind: &str, lang: &str, name: &str) -> PathBuf {
    let project = dir.join(name);
    let out = tickstock_bin()
        .args(["plugin", "new", "--kind", kind, "--lang", lang])
        .arg(&project)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plugin new: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    project
}

/// Builds a scaffolded Rust project as its README says, with one target
/// directory for every scaffold the tests build (dependencies compile
/// once); returns the component.
pub fn cargo_build(project: &Path, crate_name: &str) -> PathBuf {
    let target = repo_root().join("target").join("scaffolds");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(project)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target);
    // What the outer `cargo test` sets must not leak into the author's build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cargo build of {}: {}",
        project.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // The author's tools agree with the code they were given.
    let fmt = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(project)
        .args(["fmt", "--check"])
        .output()
        .unwrap();
    assert!(
        fmt.status.success(),
        "the scaffold is not rustfmt-clean: {}",
        String::from_utf8_lossy(&fmt.stdout)
    );
    target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// `componentize-py -d WIT -w health componentize app` in `project`;
/// returns the component.
pub fn componentize(project: &Path, wit: &Path, out: &Path) -> PathBuf {
    let result = Command::new("componentize-py")
        .current_dir(project)
        .arg("-d")
        .arg(wit)
        .args(["-w", "health", "componentize", "app", "-o"])
        .arg(out)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "componentize-py is needed to build Python plugins ({e}): \
                 pip install componentize-py=={COMPONENTIZE_PY} (.ci/run installs it)"
            )
        });
    assert!(
        result.status.success(),
        "componentize-py: {}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    out.to_path_buf()
}

/// The repository's Python example, built into `dir`.
pub fn python_example(dir: &Path) -> PathBuf {
    let example = repo_root().join("plugins/examples/python-health");
    componentize(
        &example,
        &repo_root().join("wit"),
        &dir.join("python-health.wasm"),
    )
}

/// `tickstock plugin test FILE --json ARGS`: whether it exited 0, and the
/// report (Null when nothing parsable was printed).
pub fn plugin_test(file: &Path, args: &[&str], cache: &Path) -> (bool, serde_json::Value) {
    let out = tickstock_bin()
        .args(["plugin", "test", "--json", "--cache-dir"])
        .arg(cache)
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.success(), report)
}

/// `check` in a `plugin test` report (Null when absent).
pub fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or(&serde_json::Value::Null)
}

/// The verdict of `check` in a `plugin test` report.
pub fn verdict<'a>(report: &'a serde_json::Value, name: &str) -> &'a str {
    check(report, name)["verdict"].as_str().unwrap_or("absent")
}
