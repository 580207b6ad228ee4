//! The module layers, checked: every top-level module uses only modules of
//! a lower layer, so the data flow reads top to bottom and no import cycle
//! can creep back in. The test reads the sources as text.

/// Lowest first. A module may use any module of an earlier layer.
const LAYERS: &[&[&str]] = &[
    &["contract", "secret", "backoff", "universe", "telemetry"],
    &["events", "bus"],
    &["plugins"],
    &["feed", "shadow"],
    &["simulator", "pipeline", "health_loop", "manager"],
    &["fleet"],
    &["web", "cli"],
    &["config", "author", "admin_client"],
    &["roles"],
    &["app"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level modules `source` names as `crate::NAME`, outside comments
/// and `#[cfg(test)]` modules.
fn uses(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            // `crate::{a, b::c}` names several modules at once.
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .collect(),
                None => vec![rest],
            };
            for item in names {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        }
    }
    found
}

#[test]
fn grouped_paths_are_read() {
    let found =
        uses("use crate::{events::X, bus};\nlet y = crate::feed::Frame;\n// crate::roles\n");
    assert_eq!(found, vec!["events", "bus", "feed"]);
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let top = relative.iter().next().unwrap().to_string_lossy();
            let module = top.trim_end_matches(".rs");
            // The crate roots, this file, and the binary's allocator (a module
            // of main.rs and of the benches, never of the library).
            if matches!(module, "lib" | "main" | "layers" | "allocator") {
                continue;
            }
            let own = layer_of(module)
                .unwrap_or_else(|| panic!("module {module} is in no layer of layers.rs"));
            for used in uses(&std::fs::read_to_string(&path).unwrap()) {
                if used == module {
                    continue;
                }
                match layer_of(&used) {
                    Some(layer) if layer < own => {}
                    _ => violations.push(format!("{} uses crate::{used}", relative.display())),
                }
            }
        }
    }
    violations.sort();
    assert!(
        violations.is_empty(),
        "arrows that point up or sideways: {violations:#?}"
    );
}
