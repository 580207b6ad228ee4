//! Conformance checks: golden Massive frames through a normalizer, and a
//! sanity run of a health plugin. The cases live with the contract in
//! `wit/conformance/`, so plugin authors run the same ones.
//!
//! Payloads are compared as JSON objects: a plugin may add fields (a new
//! schema version), but every field of the golden payload must be there with
//! the same value. [`Strictness::Exact`] also requires the exact bytes, which
//! the bundled 1.0.0 normalizer meets.

use serde::Deserialize;
use serde_json::Value;

use super::bindings::{EventKind, HealthReport, HostState, MetricValue, Normalized, Tick};
use super::{skip_reason_label, HealthPlugin, NormalizerPlugin};
use crate::contract::{HOST_HEALTH_FIELDS, REQUIRED_METRICS};

/// The golden cases, embedded at build time.
const NORMALIZER_CASES: &str = include_str!("../../../wit/conformance/normalizer-1.json");

/// One golden frame and what a normalizer must make of it.
#[derive(Debug, Deserialize)]
pub struct Case {
    /// What the case covers.
    pub name: String,
    /// The raw frame.
    pub frame: String,
    /// Expected payloads, in order.
    pub ticks: Vec<String>,
    /// Expected skips, in order.
    pub skipped: Vec<ExpectedSkip>,
}

/// An expected skip.
#[derive(Debug, Deserialize)]
pub struct ExpectedSkip {
    /// `status`, `unknown_event`, `malformed` or `not_published`.
    pub reason: String,
    /// The event's `ev`, if any.
    pub ev: Option<String>,
    /// The exact detail, when it matters (status events).
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Deserialize)]
struct CaseFile {
    cases: Vec<Case>,
}

/// How closely payloads must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Byte-for-byte payloads.
    Exact,
    /// Golden fields present with equal values; extra fields allowed.
    Superset,
}

/// The golden normalizer cases. A file that does not parse, or holds no
/// case, is an error: an empty list would let every plugin pass.
pub fn normalizer_cases() -> Result<Vec<Case>, String> {
    parse_cases(NORMALIZER_CASES)
}

/// Golden cases in the format of `wit/conformance/normalizer-1.json` (an
/// author's own file, for `plugin test --golden`).
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let cases = serde_json::from_str::<CaseFile>(text)
        .map_err(|e| format!("the golden frames do not parse: {e}"))?
        .cases;
    if cases.is_empty() {
        return Err("the golden frames hold no case".into());
    }
    Ok(cases)
}

/// Runs every golden case through `plugin`; returns one line per mismatch.
pub fn check_normalizer(
    plugin: &mut NormalizerPlugin,
    strictness: Strictness,
) -> Result<usize, Vec<String>> {
    let cases = normalizer_cases().map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    for case in &cases {
        match plugin.normalize_frame(&case.frame) {
            Ok(out) => problems.extend(case_problems(case, &out, strictness)),
            Err(err) => problems.push(format!("{}: call failed: {err}", case.name)),
        }
    }
    if problems.is_empty() {
        Ok(cases.len())
    } else {
        Err(problems)
    }
}

/// What is wrong with `out` as the result of `case`'s frame, one line per
/// mismatch, each starting with the case's name (empty when it matches).
pub fn case_problems(case: &Case, out: &Normalized, strictness: Strictness) -> Vec<String> {
    let mut problems = Vec::new();
    if out.ticks.len() != case.ticks.len() {
        problems.push(format!(
            "{}: expected {} ticks, got {}",
            case.name,
            case.ticks.len(),
            out.ticks.len()
        ));
    }
    for (i, (got, want)) in out.ticks.iter().zip(&case.ticks).enumerate() {
        if let Err(why) = payload_matches(&got.payload, want, strictness) {
            problems.push(format!("{}: tick {i}: {why}", case.name));
        }
    }
    let got: Vec<(&str, Option<&str>, &str)> = out
        .skipped
        .iter()
        .map(|s| {
            (
                skip_reason_label(s.reason),
                s.ev.as_deref(),
                s.detail.as_str(),
            )
        })
        .collect();
    if got.len() != case.skipped.len() {
        problems.push(format!(
            "{}: expected {} skipped, got {}: {got:?}",
            case.name,
            case.skipped.len(),
            got.len()
        ));
        return problems;
    }
    for (i, ((reason, ev, detail), want)) in got.iter().zip(&case.skipped).enumerate() {
        let detail_ok = want.detail.as_deref().is_none_or(|d| d == *detail)
            && (want.reason != "status" || ev.is_none() || !detail.is_empty());
        if *reason != want.reason || *ev != want.ev.as_deref() || !detail_ok {
            problems.push(format!(
                "{}: skipped {i}: expected {} {:?}, got {reason} {ev:?} {detail:?}",
                case.name, want.reason, want.ev
            ));
        }
    }
    problems
}

fn payload_matches(got: &str, want: &str, strictness: Strictness) -> Result<(), String> {
    if strictness == Strictness::Exact {
        return if got == want {
            Ok(())
        } else {
            Err(format!("payload {got} is not {want}"))
        };
    }
    let got_v: Value =
        serde_json::from_str(got).map_err(|e| format!("payload is not JSON ({e}): {got}"))?;
    let want_v: Value = serde_json::from_str(want).map_err(|e| format!("golden payload: {e}"))?;
    let (Some(got_o), Some(want_o)) = (got_v.as_object(), want_v.as_object()) else {
        return Err(format!("payload is not a JSON object: {got}"));
    };
    for (key, value) in want_o {
        match got_o.get(key) {
            Some(v) if v == value => {}
            Some(v) => return Err(format!("field {key:?} is {v}, expected {value}")),
            None => return Err(format!("field {key:?} is missing")),
        }
    }
    Ok(())
}

/// Runs a health plugin through a short scripted session and checks that
/// its reports carry the contract's fields with sane values.
pub fn check_health(plugin: &mut HealthPlugin) -> Result<(), Vec<String>> {
    let report = scripted_session(plugin).map_err(|e| vec![e])?;
    let mut problems = required_metrics_problems(&report);
    let value = |name: &str| metric_number(&report, name);
    if value("active_symbols") != Some(2.0) {
        problems.push(format!(
            "active_symbols is {:?} after ticks of 2 symbols",
            value("active_symbols")
        ));
    }
    match value("ticks_per_second") {
        Some(tps) if tps > 0.0 && tps.is_finite() => {}
        other => problems.push(format!(
            "ticks_per_second is {other:?} after 30 ticks in 10 s"
        )),
    }
    problems.extend(metric_name_problems(&report));
    if let Err(e) = plugin.export_state() {
        problems.push(format!("export_state failed: {e}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Ten seconds of ticks of two symbols (30 in all), then a report.
fn scripted_session(plugin: &mut HealthPlugin) -> Result<HealthReport, String> {
    let tick = |symbol: &str| Tick {
        symbol: symbol.to_string(),
        price: 100.0,
        size: 100,
        timestamp_ms: 1_700_000_000_000,
        sequence: None,
        kind: Some(EventKind::Trade),
        exchange: None,
    };
    let host = HostState {
        window_ms: 10_000,
        subscribed_symbols: 3,
        feed_connected: true,
        bus_connected: true,
        dropped_since_last_report: 0,
        issues: Vec::new(),
    };
    let t0 = 1_700_000_000_000;
    let batch = [tick("AAA"), tick("BBB"), tick("AAA")];
    for i in 0..10 {
        plugin
            .observe(&batch, t0 + i * 1_000)
            .map_err(|e| format!("observe failed: {e}"))?;
    }
    plugin
        .report(t0 + 10_000, &host)
        .map_err(|e| format!("report failed: {e}"))
}

/// A metric's value as a number, if it is one.
fn metric_number(report: &HealthReport, name: &str) -> Option<f64> {
    report
        .metrics
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| match m.value {
            MetricValue::Integer(i) => Some(i as f64),
            MetricValue::Float(f) => Some(f),
            _ => None,
        })
}

/// Every required metric is there, as a number.
fn required_metrics_problems(report: &HealthReport) -> Vec<String> {
    REQUIRED_METRICS
        .iter()
        .filter_map(
            |field| match report.metrics.iter().find(|m| m.name == *field) {
                None => Some(format!("report lacks {field}")),
                Some(m) if !matches!(m.value, MetricValue::Integer(_) | MetricValue::Float(_)) => {
                    Some(format!("{field} is not a number"))
                }
                Some(_) => None,
            },
        )
        .collect()
}

/// No metric appears twice, is unnamed, or takes a host field's name.
fn metric_name_problems(report: &HealthReport) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for m in &report.metrics {
        if !names.insert(m.name.as_str()) {
            problems.push(format!("metric {} appears twice", m.name));
        }
        if m.name.is_empty() || HOST_HEALTH_FIELDS.contains(&m.name.as_str()) {
            problems.push(format!("metric name {:?} is reserved for the host", m.name));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    #[test]
    fn golden_file_parses() {
        assert!(super::normalizer_cases().unwrap().len() >= 15);
    }

    #[test]
    fn a_golden_file_that_does_not_parse_is_an_error() {
        assert!(super::parse_cases("{\"cases\": [{\"name\": 1}]}").is_err());
        assert!(super::parse_cases("not json").is_err());
        assert!(super::parse_cases("{\"cases\": []}").is_err());
    }
}
