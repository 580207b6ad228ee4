//! What changes between two plugin versions' outputs for the same input:
//! payload fields (normalizers) or metrics (health plugins) added, removed
//! or changed, counted, each with one concrete example. `plugin test`
//! compares a component with the default plugin this way, so an author
//! sees what a consumer of `PREFIX:market:ticks` or of the health object
//! will see change.
//!
//! ```
//! use tickstock::plugins::diff::OutputDiff;
//! let mut diff = OutputDiff::default();
//! diff.payloads(r#"{"symbol":"A","price":1.5}"#, r#"{"symbol":"A","price":1.5,"sequence":7}"#);
//! assert_eq!(diff.different, 1);
//! assert_eq!(diff.added["sequence"].example, "7");
//! ```

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::bindings::{Metric, MetricValue};

/// Fields tracked per kind of change; further field names are only counted
/// in [`OutputDiff::untracked_fields`], so a diff stays small whatever the
/// outputs hold.
pub const MAX_FIELDS: usize = 64;

/// Longest example kept, in bytes.
const EXAMPLE_BYTES: usize = 120;
/// Longest field name kept, in bytes.
const NAME_BYTES: usize = 64;

/// One field's change: how many outputs showed it, and the first one seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Outputs in which this field was added, removed or changed.
    pub count: u64,
    /// The first example: the value (added or removed) or `old -> new`.
    pub example: String,
}

/// The running comparison of two versions' outputs.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct OutputDiff {
    /// Outputs (payloads, reports) compared.
    pub compared: u64,
    /// Outputs identical in both versions (as JSON values).
    pub identical: u64,
    /// Outputs that differ.
    pub different: u64,
    /// Inputs for which the versions produced a different number of outputs.
    pub count_mismatches: u64,
    /// Outputs of the candidate that are not a JSON object.
    pub not_objects: u64,
    /// Fields only the candidate has.
    pub added: BTreeMap<String, FieldChange>,
    /// Fields only the reference has.
    pub removed: BTreeMap<String, FieldChange>,
    /// Fields both have, with different values.
    pub changed: BTreeMap<String, FieldChange>,
    /// Changes to fields beyond the first [`MAX_FIELDS`] of a kind.
    pub untracked_fields: u64,
}

impl OutputDiff {
    /// Compares one payload of the reference version with the candidate's.
    pub fn payloads(&mut self, reference: &str, candidate: &str) {
        let parse = |text: &str| match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        match (parse(reference), parse(candidate)) {
            (Some(r), Some(c)) => self.objects(&r, &c),
            (_, None) => {
                self.compared += 1;
                self.different += 1;
                self.not_objects += 1;
            }
            // The reference's own payload is not an object: nothing to say
            // field by field.
            (None, Some(_)) => {
                self.compared += 1;
                self.different += 1;
            }
        }
    }

    /// Compares one report's metrics of the reference with the candidate's.
    pub fn metrics(&mut self, reference: &[Metric], candidate: &[Metric]) {
        self.objects(&metric_object(reference), &metric_object(candidate));
    }

    /// Records how many outputs each version made of one input.
    pub fn output_counts(&mut self, reference: usize, candidate: usize) {
        if reference != candidate {
            self.count_mismatches += 1;
        }
    }

    /// True when no difference at all was seen.
    pub fn is_empty(&self) -> bool {
        self.different == 0 && self.count_mismatches == 0
    }

    /// One line: counts, then the fields added, removed and changed.
    pub fn summary(&self) -> String {
        let list = |fields: &BTreeMap<String, FieldChange>| {
            if fields.is_empty() {
                "none".to_string()
            } else {
                fields
                    .iter()
                    .map(|(name, c)| format!("{name} (e.g. {})", c.example))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let mut line = format!(
            "{} of {} outputs differ; added: {}; removed: {}; changed: {}",
            self.different,
            self.compared,
            list(&self.added),
            list(&self.removed),
            list(&self.changed)
        );
        if self.count_mismatches > 0 {
            line.push_str(&format!(
                "; {} inputs gave a different number of outputs",
                self.count_mismatches
            ));
        }
        if self.not_objects > 0 {
            line.push_str(&format!(
                "; {} candidate outputs are not JSON objects",
                self.not_objects
            ));
        }
        line
    }

    fn objects(&mut self, reference: &Map<String, Value>, candidate: &Map<String, Value>) {
        self.compared += 1;
        if reference == candidate {
            self.identical += 1;
            return;
        }
        self.different += 1;
        for (name, value) in candidate {
            match reference.get(name) {
                None => self.note(Kind::Added, name, clip(&value.to_string(), EXAMPLE_BYTES)),
                Some(old) if old != value => self.note(
                    Kind::Changed,
                    name,
                    clip(&format!("{old} -> {value}"), EXAMPLE_BYTES),
                ),
                Some(_) => {}
            }
        }
        for (name, value) in reference {
            if !candidate.contains_key(name) {
                self.note(Kind::Removed, name, clip(&value.to_string(), EXAMPLE_BYTES));
            }
        }
    }

    fn note(&mut self, kind: Kind, name: &str, example: String) {
        let fields = match kind {
            Kind::Added => &mut self.added,
            Kind::Removed => &mut self.removed,
            Kind::Changed => &mut self.changed,
        };
        // A field name is input too: kept short.
        let name = clip(name, NAME_BYTES);
        if let Some(change) = fields.get_mut(&name) {
            change.count += 1;
        } else if fields.len() < MAX_FIELDS {
            fields.insert(name, FieldChange { count: 1, example });
        } else {
            self.untracked_fields += 1;
        }
    }
}

enum Kind {
    Added,
    Removed,
    Changed,
}

/// A report's metrics as the JSON object they become in the health event.
pub fn metric_object(metrics: &[Metric]) -> Map<String, Value> {
    metrics
        .iter()
        .map(|m| {
            let value = match &m.value {
                MetricValue::Integer(i) => Value::from(*i),
                MetricValue::Float(f) => Value::from(*f),
                MetricValue::Flag(b) => Value::from(*b),
                MetricValue::Text(t) => Value::from(t.as_str()),
            };
            (m.name.clone(), value)
        })
        .collect()
}

/// `text` cut to at most `bytes` (at a character boundary), with `...`
/// when something was cut: examples in reports and diffs stay short
/// whatever the input held.
pub fn clip(text: &str, bytes: usize) -> String {
    if text.len() <= bytes {
        return text.to_string();
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_added_removed_and_changed_are_counted_with_an_example() {
        let mut diff = OutputDiff::default();
        diff.payloads(r#"{"a":1,"b":2,"c":3}"#, r#"{"a":1,"b":5,"d":"x"}"#);
        diff.payloads(r#"{"a":1,"b":2,"c":3}"#, r#"{"a":1,"b":6,"d":"y"}"#);
        diff.payloads(r#"{"a":1}"#, r#"{"a":1}"#);
        diff.payloads(r#"{"a":1}"#, "not json");
        assert_eq!((diff.compared, diff.identical, diff.different), (4, 1, 3));
        assert_eq!(diff.not_objects, 1);
        assert_eq!(
            diff.added["d"],
            FieldChange {
                count: 2,
                example: "\"x\"".into()
            }
        );
        assert_eq!(diff.removed["c"].count, 2);
        assert_eq!(diff.changed["b"].example, "2 -> 5");
        assert!(
            diff.summary().contains("added: d (e.g. \"x\")"),
            "{}",
            diff.summary()
        );
    }

    #[test]
    fn metrics_compare_as_the_health_object() {
        let metric = |name: &str, value| Metric {
            name: name.into(),
            value,
        };
        let mut diff = OutputDiff::default();
        diff.metrics(
            &[metric("active_symbols", MetricValue::Integer(2))],
            &[
                metric("active_symbols", MetricValue::Integer(2)),
                metric("busiest_symbol", MetricValue::Text("AAPL".into())),
            ],
        );
        assert_eq!(diff.added["busiest_symbol"].example, "\"AAPL\"");
        assert!(diff.removed.is_empty() && diff.changed.is_empty());
    }

    #[test]
    fn the_field_maps_stay_bounded() {
        let mut diff = OutputDiff::default();
        for i in 0..(MAX_FIELDS + 10) {
            diff.payloads("{}", &format!(r#"{{"f{i}":1}}"#));
        }
        assert_eq!(diff.added.len(), MAX_FIELDS);
        assert_eq!(diff.untracked_fields, 10);
    }
}
