//! Named symbol universes, shipped as data files in `host/universes/`.

use thiserror::Error;

/// The universe used when neither `--symbols` nor `--universe` is given.
pub const DEFAULT_UNIVERSE: &str = "market_leaders:top_500";

/// (name, file contents) of every shipped universe.
const UNIVERSES: &[(&str, &str)] = &[
    (
        "market_leaders:top_500",
        include_str!("../universes/market_leaders_top_500.txt"),
    ),
    (
        "demo:mega_caps",
        include_str!("../universes/demo_mega_caps.txt"),
    ),
];

/// A named list of symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Universe {
    /// Its name, e.g. `market_leaders:top_500`.
    pub name: String,
    /// Its symbols, in file order, without duplicates.
    pub symbols: Vec<String>,
}

/// A universe name that is not shipped.
#[derive(Debug, Error)]
#[error("unknown universe {name:?}; known universes: {known}")]
pub struct UnknownUniverse {
    name: String,
    known: String,
}

impl Universe {
    /// Looks up a shipped universe by name.
    pub fn named(name: &str) -> Result<Universe, UnknownUniverse> {
        let (_, text) =
            UNIVERSES
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| UnknownUniverse {
                    name: name.to_string(),
                    known: Universe::names().join(", "),
                })?;
        let mut symbols: Vec<String> = Vec::new();
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') && !symbols.iter().any(|s| s == line) {
                symbols.push(line.to_string());
            }
        }
        Ok(Universe {
            name: name.to_string(),
            symbols,
        })
    }

    /// Names of the shipped universes.
    pub fn names() -> Vec<&'static str> {
        UNIVERSES.iter().map(|(n, _)| *n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_500_has_500_distinct_symbols() {
        let u = Universe::named(DEFAULT_UNIVERSE).unwrap();
        assert_eq!(u.symbols.len(), 500);
        assert!(u.symbols.iter().any(|s| s == "AAPL"));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = Universe::named("nope").unwrap_err().to_string();
        assert!(err.contains("market_leaders:top_500"), "{err}");
    }
}
