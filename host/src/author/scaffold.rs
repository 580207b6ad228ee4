//! `tickstock plugin new` and `tickstock plugin wit`: a ready-to-build
//! plugin project, written from what is embedded in this binary.
//!
//! The Rust templates are the default plugins' own sources
//! (`plugins/normalizer`, `plugins/health`), so a new project starts from
//! code the host ships and tests; lines marked `// scaffold: drop` (or
//! between `// scaffold: drop-begin` and `-end`) are this repository's
//! test-only hooks and are left out, and `// scaffold: use CODE` lines
//! become CODE. The Python template is the repository's Python example
//! (`plugins/examples/python-health`). Every project gets the WIT contract,
//! so it builds outside this repository.
//!
//! ```text
//! tickstock plugin new --kind health my-health
//! cd my-health && cargo build --release --target wasm32-wasip2
//! tickstock plugin test target/wasm32-wasip2/release/my_health.wasm
//! ```

use std::path::{Path, PathBuf};

use crate::contract::{PluginKind, WIT_VERSION};

/// The contract, as this binary was built against it.
pub const WIT_FILES: &[(&str, &str)] = &[
    ("tickstock.wit", include_str!("../../../wit/tickstock.wit")),
    ("README.md", include_str!("../../../wit/README.md")),
    (
        "conformance/normalizer-1.json",
        include_str!("../../../wit/conformance/normalizer-1.json"),
    ),
];

/// The componentize-py version the Python template is built and tested with.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// What the Python template adds to the host's resident memory once
/// installed (measured as `docs/plugins.md` says).
const PYTHON_RSS: &str = "56 MiB when its compiled code comes from the cache \
(compiling it inside the host leaves up to ~290 MiB more resident; see the host's docs/plugins.md)";

pub use crate::cli::PluginLang as Lang;

/// Why a project cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a crate or file name.
    #[error("plugin name {0:?} must be 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter")]
    BadName(String),
    /// The target directory exists and is not empty.
    #[error("{0} already exists and is not empty; choose another name or remove it")]
    NotEmpty(PathBuf),
    /// No template for this combination.
    #[error("there is no Python template for normalizer plugins (a normalizer runs on the hot path, once per frame; a Python one would run an interpreter there); write it in Rust: `--lang rust`")]
    NoPythonNormalizer,
    /// Writing failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// One file of a project: path relative to the project, and its text.
type File = (String, String);

/// Writes a new `kind` plugin project named after the last component of
/// `dir` into `dir` (created; it must not exist or be empty). Returns the
/// files written, relative to `dir`.
pub fn new_project(dir: &Path, kind: PluginKind, lang: Lang) -> Result<Vec<String>, ScaffoldError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if !valid_name(&name) {
        return Err(ScaffoldError::BadName(name));
    }
    let files = match (kind, lang) {
        (_, Lang::Rust) => rust_project(&name, kind),
        (PluginKind::Health, Lang::Python) => python_project(&name),
        (PluginKind::Normalizer, Lang::Python) => return Err(ScaffoldError::NoPythonNormalizer),
    };
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    write_all(dir, &files)
}

/// Writes the WIT contract into `dir` (`tickstock.wit`, its README and the
/// golden frames). Returns the files written, relative to `dir`.
pub fn write_wit(dir: &Path) -> Result<Vec<String>, ScaffoldError> {
    write_all(dir, &wit_files(""))
}

fn write_all(dir: &Path, files: &[File]) -> Result<Vec<String>, ScaffoldError> {
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Io { path, source })?;
    }
    Ok(files.iter().map(|(rel, _)| rel.clone()).collect())
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn wit_files(under: &str) -> Vec<File> {
    WIT_FILES
        .iter()
        .map(|(rel, text)| (format!("{under}{rel}"), (*text).to_string()))
        .collect()
}

/// `{{key}}` -> value, for every pair.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter()
        .fold(template.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

/// A default plugin's source as a template: test-only hooks dropped,
/// `scaffold: use` lines switched on, the contract read from `wit/`.
fn from_default_source(source: &str, default_crate: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(source.len());
    let mut dropping = false;
    for line in source.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("// scaffold: drop-begin") {
            dropping = true;
        } else if trimmed.starts_with("// scaffold: drop-end") {
            dropping = false;
        } else if dropping || line.ends_with("// scaffold: drop") {
        } else if let Some(code) = trimmed.strip_prefix("// scaffold: use ") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(indent);
            out.push_str(code);
            out.push('\n');
        } else if trimmed.starts_with("// `tickstock plugin new` writes this crate")
            || trimmed.starts_with("// `scaffold: drop` (and blocks")
            || trimmed.starts_with("// are left out, and `// scaffold: use")
        {
            // The note about these markers means nothing in the copy.
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    // Dropped lines can leave two blank lines in a row; rustfmt keeps one.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    let crate_ident = fill("{{crate}}", vars).replace('-', "_");
    fill(
        &out.replace("path: \"../../wit\"", "path: \"wit\"")
            .replace(default_crate, &crate_ident),
        vars,
    )
}

fn rust_project(name: &str, kind: PluginKind) -> Vec<File> {
    let (world, default, default_crate, sources, layout, test_summary): (
        &str,
        &str,
        &str,
        &[(&str, &str)],
        &str,
        &str,
    ) = match kind {
        PluginKind::Normalizer => (
            "normalizer",
            "`massive-stocks` 1.0.0",
            "tickstock_normalizer",
            &[
                ("src/lib.rs", include_str!("../../../plugins/normalizer/src/lib.rs")),
                ("src/massive.rs", include_str!("../../../plugins/normalizer/src/massive.rs")),
                (
                    "src/massive/scan.rs",
                    include_str!("../../../plugins/normalizer/src/massive/scan.rs"),
                ),
            ],
            "- `src/massive.rs`: the parsing and the wire payload, plain Rust with unit tests;\n  `src/massive/scan.rs`, its hand-written fast path for ordinary frames\n  (serde_json reads everything else).",
            "the golden frames of `wit/conformance/`, fuzzed and mutated frames\n(never a trap or a timeout), determinism, latency per call and peak\nmemory against the host's limits, and the payload fields against the\ndefault plugin's (what a consumer will see change).",
        ),
        PluginKind::Health => (
            "health",
            "`stream-health` 1.0.0",
            "tickstock_health",
            &[
                ("src/lib.rs", include_str!("../../../plugins/health/src/lib.rs")),
                ("src/state.rs", include_str!("../../../plugins/health/src/state.rs")),
            ],
            "- `src/state.rs`: the windows, the metrics and the status rule, plain Rust\n  with unit tests (time is an argument, so they are exact).",
            "the scripted session, fuzzed tick batches, determinism, the state\nround trip (export, import into a fresh instance, the same report),\nlatency per call and peak memory against the host's limits, and the\nmetric set against the default plugin's.",
        ),
    };
    let crate_name = name.replace('_', "-");
    // The file cargo writes: the crate name with underscores.
    let crate_file = name.replace('-', "_");
    let versions = pinned_versions();
    let vars: Vec<(&str, &str)> = vec![
        ("name", name),
        ("crate", crate_name.as_str()),
        ("crate_file", crate_file.as_str()),
        ("kind", kind.as_str()),
        ("world", world),
        ("default", default),
        ("layout", layout),
        ("test_summary", test_summary),
        ("wit_version", WIT_VERSION),
        ("rust_version", versions.rust),
        ("wit_bindgen", versions.wit_bindgen),
        ("serde", versions.serde),
        ("serde_json", versions.serde_json),
        ("zmij", versions.zmij),
        ("itoa", versions.itoa),
    ];
    let mut files: Vec<File> = vec![
        (
            "Cargo.toml".into(),
            fill(include_str!("../../templates/rust-Cargo.toml"), &vars),
        ),
        (
            "README.md".into(),
            fill(include_str!("../../templates/rust-README.md"), &vars),
        ),
        (
            "Cargo.lock".into(),
            include_str!("../../../Cargo.lock").to_string(),
        ),
        (
            "rust-toolchain.toml".into(),
            include_str!("../../../rust-toolchain.toml").to_string(),
        ),
        (
            ".cargo/config.toml".into(),
            include_str!("../../templates/rust-cargo-config.toml").to_string(),
        ),
        (".gitignore".into(), "/target\n".into()),
    ];
    for (rel, source) in sources {
        files.push((
            (*rel).to_string(),
            from_default_source(source, default_crate, &vars),
        ));
    }
    files.extend(wit_files("wit/"));
    files
}

fn python_project(name: &str) -> Vec<File> {
    let vars = [
        ("name", name),
        ("componentize_py", COMPONENTIZE_PY),
        ("python_rss", PYTHON_RSS),
    ];
    let app = include_str!("../../../plugins/examples/python-health/app.py")
        .replace("NAME = \"python-health\"", &format!("NAME = \"{name}\""));
    let mut files: Vec<File> = vec![
        ("app.py".into(), app),
        (
            "README.md".into(),
            fill(include_str!("../../templates/python-README.md"), &vars),
        ),
        (
            ".gitignore".into(),
            "*.wasm\n__pycache__/\nwit_world/\n".into(),
        ),
    ];
    files.extend(wit_files("wit/"));
    files
}

/// Versions this repository builds its plugins with, read from its
/// `Cargo.lock` and `rust-toolchain.toml` by the build script.
struct Pinned {
    rust: &'static str,
    wit_bindgen: &'static str,
    serde: &'static str,
    serde_json: &'static str,
    zmij: &'static str,
    itoa: &'static str,
}

fn pinned_versions() -> Pinned {
    Pinned {
        rust: env!("TICKSTOCK_PIN_RUST"),
        wit_bindgen: env!("TICKSTOCK_PIN_WIT_BINDGEN"),
        serde: env!("TICKSTOCK_PIN_SERDE"),
        serde_json: env!("TICKSTOCK_PIN_SERDE_JSON"),
        zmij: env!("TICKSTOCK_PIN_ZMIJ"),
        itoa: env!("TICKSTOCK_PIN_ITOA"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_drop_test_hooks_and_switch_on_the_replacements() {
        let source = "a\n// scaffold: drop-begin\nb\n// scaffold: drop-end\n    // scaffold: use c({{name}});\nd(); // scaffold: drop\ne(path: \"../../wit\", tickstock_health)\n";
        let out = from_default_source(
            source,
            "tickstock_health",
            &[("name", "x"), ("crate", "my-plugin")],
        );
        assert_eq!(out, "a\n    c(x);\ne(path: \"wit\", my_plugin)\n");
    }

    #[test]
    fn the_templates_carry_no_test_hook_of_this_repository() {
        for kind in [PluginKind::Normalizer, PluginKind::Health] {
            for (rel, text) in rust_project("my-plugin", kind) {
                if rel.ends_with(".rs") || rel.ends_with(".toml") {
                    for needle in [
                        "feature = \"test-",
                        "scaffold:",
                        "{{name}}",
                        "{{crate}}",
                        // The repository's contract, not the project's copy.
                        "path: \"../../wit\"",
                        "tickstock_normalizer",
                        "tickstock_health",
                    ] {
                        assert!(
                            !text.contains(needle),
                            "{kind} {rel} still contains {needle:?}"
                        );
                    }
                }
            }
        }
        let (_, lib) = rust_project("my-plugin", PluginKind::Health)
            .into_iter()
            .find(|(rel, _)| rel == "src/lib.rs")
            .unwrap_or_default();
        assert!(
            lib.contains("pub const NAME: &str = \"my-plugin\";"),
            "{lib}"
        );
        assert!(lib.contains("pub const VERSION: &str = env!(\"CARGO_PKG_VERSION\");"));
    }

    #[test]
    fn rust_scaffolds_build_with_the_settings_of_the_default_plugins() {
        // The host's build script passes this file to cargo for its own
        // plugins; a scaffold gets the same so it is as fast.
        let host_config = include_str!("../../templates/rust-cargo-config.toml");
        assert!(host_config.contains("inline-threshold"));
        for kind in [PluginKind::Normalizer, PluginKind::Health] {
            let files = rust_project("my-plugin", kind);
            let config = files.iter().find(|(rel, _)| rel == ".cargo/config.toml");
            assert_eq!(config.map(|(_, text)| text.as_str()), Some(host_config));
            let manifest = files.iter().find(|(rel, _)| rel == "Cargo.toml");
            let manifest = manifest.map(|(_, text)| text.as_str()).unwrap_or_default();
            assert!(manifest.contains("lto = \"fat\""), "{manifest}");
            assert!(manifest.contains("codegen-units = 1"), "{manifest}");
        }
    }

    #[test]
    fn names_are_checked_and_python_normalizers_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for bad in ["Upper", "9lives", "has space", "dot.name", "-dash"] {
            let err = new_project(&dir.path().join(bad), PluginKind::Health, Lang::Rust);
            assert!(
                matches!(err, Err(ScaffoldError::BadName(_))),
                "{bad:?}: {err:?}"
            );
        }
        assert!(matches!(
            new_project(&dir.path().join("py"), PluginKind::Normalizer, Lang::Python),
            Err(ScaffoldError::NoPythonNormalizer)
        ));
        let taken = dir.path().join("taken");
        std::fs::create_dir_all(&taken).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(taken.join("keep"), "x").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            new_project(&taken, PluginKind::Health, Lang::Rust),
            Err(ScaffoldError::NotEmpty(_))
        ));
        assert_eq!(
            std::fs::read_to_string(taken.join("keep")).ok().as_deref(),
            Some("x")
        );
    }
}
