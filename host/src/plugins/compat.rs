//! Checks that a compiled component implements the expected world at a
//! compatible version, before anything instantiates it.
//!
//! wasmtime would refuse a mismatched component too, but with a message
//! about missing exports; this check names the problem in the contract's
//! terms: wrong kind, incompatible major version, missing export, or an
//! import the host does not grant.

use wasmtime::component::Component;
use wasmtime::Engine;

use super::error::LoadError;
use crate::contract::{PluginKind, WIT_ACCEPTED, WIT_MAJOR, WIT_PACKAGE};

/// Splits `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, `Some("1.2.3")`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((iface, version)) => (iface, Some(version)),
        None => (name, None),
    }
}

fn major_of(version: &str) -> Option<u64> {
    version.split('.').next()?.parse().ok()
}

/// Checks `component` against the contract for `kind` and returns the
/// contract version it was built against.
pub fn check(
    engine: &Engine,
    component: &Component,
    kind: PluginKind,
) -> Result<String, LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();

    let mut found_version = None;
    for name in &exports {
        let (iface, version) = split_version(name);
        match PluginKind::from_interface(iface) {
            Some(k) if k == kind => found_version = Some(version.unwrap_or("").to_string()),
            Some(other) => {
                return Err(LoadError::WrongKind {
                    expected: kind.as_str(),
                    found: other.as_str(),
                    export: name.clone(),
                })
            }
            None => {}
        }
    }
    let Some(version) = found_version else {
        return Err(LoadError::MissingExport {
            wanted: format!("{}@{}", kind.export_interface(), WIT_ACCEPTED),
            found: if exports.is_empty() {
                "(none)".to_string()
            } else {
                exports.join(", ")
            },
        });
    };
    if major_of(&version) != Some(WIT_MAJOR) {
        return Err(LoadError::IncompatibleVersion {
            package: WIT_PACKAGE,
            found: if version.is_empty() {
                "(unversioned)".into()
            } else {
                version
            },
            accepted: WIT_ACCEPTED,
        });
    }

    for (name, _) in ty.imports(engine) {
        if !granted(name) {
            return Err(LoadError::UnsupportedImport(name.to_string()));
        }
    }
    Ok(version)
}

/// The WASI 0.2 packages the host links (inert; see [`super::wasi`]).
const WASI_PACKAGES: [&str; 6] = [
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// Whether the host provides import `name`: the contract's own interfaces
/// at the accepted major version, or WASI 0.2.x.
fn granted(name: &str) -> bool {
    let (iface, version) = split_version(name);
    if iface.starts_with(&format!("{WIT_PACKAGE}/")) {
        return version.and_then(major_of) == Some(WIT_MAJOR);
    }
    WASI_PACKAGES.iter().any(|p| iface.starts_with(p))
        && version.is_some_and(|v| v.starts_with("0.2."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_split() {
        assert_eq!(
            split_version("tickstock:plugins/normalize@1.2.3"),
            ("tickstock:plugins/normalize", Some("1.2.3"))
        );
        assert_eq!(split_version("root-func"), ("root-func", None));
        assert_eq!(major_of("2.0.0"), Some(2));
        assert_eq!(major_of("x"), None);
    }

    #[test]
    fn wasi_0_2_and_the_contract_are_granted_and_nothing_else() {
        assert!(granted("wasi:io/poll@0.2.0"));
        assert!(granted("wasi:clocks/monotonic-clock@0.2.6"));
        assert!(granted("tickstock:plugins/host@1.3.0"));
        assert!(!granted("tickstock:plugins/host@2.0.0"));
        assert!(!granted("wasi:http/types@0.2.0"), "not linked");
        assert!(!granted("wasi:io/poll@0.3.0"), "another WASI release");
        assert!(!granted("wasi:io/poll"), "unversioned");
        assert!(!granted("acme:evil/backdoor@1.0.0"));
    }
}
