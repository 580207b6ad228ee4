//! What a shadow run finds: a running report, updated by the shadow thread
//! after every input and read by the admin API, the CLI, the dashboard and
//! the plugins channel.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;

use crate::contract::PluginKind;
use crate::events::health_time;
use crate::plugins::diff::{self, OutputDiff};
use crate::plugins::{CallError, CallStats, HealthReport, Normalized};

/// Examples kept of each kind of finding.
const EXAMPLES: usize = 5;
/// Longest input or output quoted in an example, in bytes.
const QUOTE_BYTES: usize = 160;

/// Name, version and hash of one side of the comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Side {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// SHA-256 of the component.
    pub sha256: String,
}

/// Call latency of one side, from its call histogram.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Calls made.
    pub calls: u64,
    /// Median, ms (the upper bound of its histogram bucket).
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
}

impl Latency {
    /// Reads `stats`.
    pub fn of(stats: &CallStats) -> Latency {
        Latency {
            calls: CallStats::get(&stats.calls),
            p50_ms: stats.quantile_ms(0.5),
            p99_ms: stats.quantile_ms(0.99),
        }
    }
}

/// The running report of one shadow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShadowReport {
    /// The kind of plugin.
    pub kind: PluginKind,
    /// The live version it is compared with.
    pub live: Side,
    /// The candidate.
    pub candidate: Side,
    /// When the shadow started (milliseconds, `Z`).
    pub started_at: String,
    /// When it ended, if it did.
    pub ended_at: Option<String>,
    /// Why it ended (`stopped`, `promoted`, `time is up`, ...).
    pub end_reason: Option<String>,
    /// Inputs (frames; tick batches and report times) both versions were given.
    pub inputs_compared: u64,
    /// Outputs (a frame's ticks; a report) identical in both.
    pub identical: u64,
    /// Outputs that differ.
    pub different: u64,
    /// Payloads (normalizer) or metric sets (health), field by field.
    pub fields: OutputDiff,
    /// Reports whose status differs (health).
    pub status_differences: u64,
    /// A few concrete differences: the input and both outputs.
    pub examples: Vec<String>,
    /// Failed candidate calls, by kind (`trap`, `deadline`, `memory`,
    /// `oversized`, ...).
    pub candidate_errors: BTreeMap<&'static str, u64>,
    /// The first few candidate errors.
    pub error_examples: Vec<String>,
    /// Failed calls of the live version's shadow instance.
    pub live_errors: u64,
    /// Inputs the shadow could not take (it fell behind) and skipped.
    pub skipped_inputs: u64,
    /// Latency of the live version's instance on the shadow thread.
    pub live_latency: Latency,
    /// Latency of the candidate on the same inputs.
    pub candidate_latency: Latency,
}

impl ShadowReport {
    /// An empty report.
    pub fn new(kind: PluginKind, live: Side, candidate: Side) -> Self {
        ShadowReport {
            kind,
            live,
            candidate,
            started_at: health_time(Utc::now()),
            ended_at: None,
            end_reason: None,
            inputs_compared: 0,
            identical: 0,
            different: 0,
            fields: OutputDiff::default(),
            status_differences: 0,
            examples: Vec::new(),
            candidate_errors: BTreeMap::new(),
            error_examples: Vec::new(),
            live_errors: 0,
            skipped_inputs: 0,
            live_latency: Latency::default(),
            candidate_latency: Latency::default(),
        }
    }

    /// One frame through both normalizers.
    pub fn frame(
        &mut self,
        frame: &str,
        live: &Result<Normalized, CallError>,
        candidate: &Result<Normalized, CallError>,
    ) {
        self.inputs_compared += 1;
        let (live, candidate) = match (live, candidate) {
            (Ok(l), Ok(c)) => (l, c),
            (l, c) => return self.failed(frame, l.as_ref().err(), c.as_ref().err()),
        };
        let before = self.fields.different;
        self.fields
            .output_counts(live.ticks.len(), candidate.ticks.len());
        for (l, c) in live.ticks.iter().zip(&candidate.ticks) {
            self.fields.payloads(&l.payload, &c.payload);
        }
        // What was skipped, and why, is output too.
        let skips = |n: &Normalized| -> Vec<(&'static str, Option<String>)> {
            n.skipped
                .iter()
                .map(|s| (crate::plugins::skip_reason_label(s.reason), s.ev.clone()))
                .collect()
        };
        let same = self.fields.different == before
            && live.ticks.len() == candidate.ticks.len()
            && skips(live) == skips(candidate);
        if same {
            self.identical += 1;
        } else {
            self.different += 1;
            let first = |n: &Normalized| {
                n.ticks
                    .first()
                    .map_or("(no tick)".to_string(), |t| t.payload.clone())
            };
            self.example(format!(
                "frame {}: live {} tick(s), first {}; candidate {} tick(s), first {}",
                clip(frame),
                live.ticks.len(),
                clip(&first(live)),
                candidate.ticks.len(),
                clip(&first(candidate))
            ));
        }
    }

    /// One report of both health plugins at `now_ms`.
    pub fn report(
        &mut self,
        now_ms: i64,
        live: &Result<HealthReport, CallError>,
        candidate: &Result<HealthReport, CallError>,
    ) {
        self.inputs_compared += 1;
        let (live, candidate) = match (live, candidate) {
            (Ok(l), Ok(c)) => (l, c),
            (l, c) => {
                let what = format!("report at {now_ms}");
                return self.failed(&what, l.as_ref().err(), c.as_ref().err());
            }
        };
        let before = self.fields.different;
        self.fields.metrics(&live.metrics, &candidate.metrics);
        if self.fields.different != before {
            let object = |r: &HealthReport| {
                serde_json::Value::Object(crate::plugins::diff::metric_object(&r.metrics))
                    .to_string()
            };
            self.example(format!(
                "report at {now_ms}: live {}; candidate {}",
                clip(&object(live)),
                clip(&object(candidate))
            ));
        }
        let status_differs = live.status != candidate.status;
        if status_differs {
            self.status_differences += 1;
            self.example(format!(
                "report at {now_ms}: status {:?} ({}) vs {:?} ({})",
                live.status,
                clip(&live.reason),
                candidate.status,
                clip(&candidate.reason)
            ));
        }
        if self.fields.different == before && !status_differs {
            self.identical += 1;
        } else {
            self.different += 1;
        }
    }

    /// One observed batch: only failures count (observe returns nothing).
    pub fn observed(
        &mut self,
        ticks: usize,
        live: &Result<(), CallError>,
        candidate: &Result<(), CallError>,
    ) {
        self.inputs_compared += 1;
        if live.is_err() || candidate.is_err() {
            let what = format!("observe of {ticks} ticks");
            self.failed(&what, live.as_ref().err(), candidate.as_ref().err());
        }
        // A successful observe returns nothing to compare: what it did
        // shows in the next report, which is what `identical` and
        // `different` count (counting observes as identical would make a
        // candidate whose every report differs look mostly identical).
    }

    fn failed(&mut self, input: &str, live: Option<&CallError>, candidate: Option<&CallError>) {
        if live.is_some() {
            self.live_errors += 1;
        }
        if let Some(err) = candidate {
            *self.candidate_errors.entry(err.kind()).or_default() += 1;
            if self.error_examples.len() < EXAMPLES {
                self.error_examples
                    .push(format!("{} on {}", clip(&err.to_string()), clip(input)));
            }
        }
        // Both failing the same way is the same behaviour.
        match (live, candidate) {
            (Some(l), Some(c)) if l.kind() == c.kind() => self.identical += 1,
            _ => self.different += 1,
        }
    }

    /// A candidate call the watchdog gave up on.
    pub fn abandoned(&mut self, plugin: &str, stuck_for: std::time::Duration) {
        *self.candidate_errors.entry("abandoned").or_default() += 1;
        if self.error_examples.len() < EXAMPLES {
            self.error_examples.push(format!(
                "{plugin} did not return for {} ms; its thread was abandoned",
                stuck_for.as_millis()
            ));
        }
    }

    /// Marks the report ended, with why (the first reason stays).
    pub fn end(&mut self, reason: &str) {
        if self.ended_at.is_none() {
            self.ended_at = Some(health_time(Utc::now()));
            self.end_reason = Some(reason.to_string());
        }
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(text);
        }
    }

    /// Failed candidate calls of every kind.
    pub fn candidate_error_total(&self) -> u64 {
        self.candidate_errors.values().sum()
    }

    /// One line, for logs and the CLI.
    pub fn summary(&self) -> String {
        format!(
            "{} {} vs live {}: {} inputs, {} identical, {} different; {}; {} candidate errors, {} skipped",
            self.kind,
            self.candidate.version,
            self.live.version,
            self.inputs_compared,
            self.identical,
            self.different,
            self.fields.summary(),
            self.candidate_error_total(),
            self.skipped_inputs
        )
    }
}

/// An input or output quoted in the report, kept short.
fn clip(text: &str) -> String {
    diff::clip(text, QUOTE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(version: &str) -> Side {
        Side {
            name: "h".into(),
            version: version.into(),
            sha256: String::new(),
        }
    }

    #[test]
    fn successful_observes_are_compared_but_not_counted_identical() {
        let mut report = ShadowReport::new(PluginKind::Health, side("1"), side("2"));
        for _ in 0..50 {
            report.observed(10, &Ok(()), &Ok(()));
        }
        assert_eq!(report.inputs_compared, 50);
        assert_eq!((report.identical, report.different), (0, 0));
    }
}
