//! `tickstock plugin test`: the plugin author's harness.
//!
//! `plugin check` is the host's gate (would a hot swap accept this?); this
//! is what an author runs while writing a plugin. It loads the component
//! exactly as the host does, then runs each check below and reports it as
//! PASS, FAIL or INFO, with the details that explain a failure:
//!
//! | check | normalizer | health |
//! |---|---|---|
//! | conformance (the host's gate) | golden frames | scripted session |
//! | golden | every golden frame, with a diff per case | (the gate's session) |
//! | fuzz | mutated and hostile frames: no trap, no deadline, no oversized result | hostile tick batches and host states |
//! | determinism | a fresh instance gives the same outputs | the same reports |
//! | state | | export, import into a fresh instance, the same reports after |
//! | latency, memory (INFO) | per call, against the deadline; peak linear memory against the limit | the same |
//! | vs default (INFO) | payload fields added, removed, changed | metrics added, removed, changed |
//!
//! The process exits 0 only when no check failed. A file that is not a
//! component, a core module or the wrong world fails at load, with the
//! host's own one-line reason.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::plugins::bindings::{EventKind, HostState, Tick};
use crate::plugins::conformance::{self, Case, Strictness};
use crate::plugins::diff::{self, metric_object, OutputDiff};
use crate::plugins::{
    embedded, skip_reason_label, HealthPlugin, LoadedComponent, NormalizerPlugin, PluginEngine,
    PluginKind, World,
};

/// What to test: the command line's options (`--fuzz` and `--seed`
/// choose the hostile input; `--json` only how the report is printed).
pub use crate::cli::PluginTestArgs as TestOptions;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It passed.
    Pass,
    /// It failed: the exit code is non-zero.
    Fail,
    /// A measurement or a comparison, never a failure.
    Info,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name (`golden`, `fuzz`, ...).
    pub name: &'static str,
    /// How it came out.
    pub verdict: Verdict,
    /// One line.
    pub summary: String,
    /// What explains a failure (a diff, examples), one line each.
    pub details: Vec<String>,
}

impl Check {
    fn new(name: &'static str, verdict: Verdict, summary: impl Into<String>) -> Self {
        Check {
            name,
            verdict,
            summary: summary.into(),
            details: Vec::new(),
        }
    }

    fn pass_or_fail(name: &'static str, problems: Vec<String>, summary: String) -> Self {
        let verdict = if problems.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        Check {
            name,
            verdict,
            summary,
            details: problems,
        }
    }
}

/// The whole run: what was loaded and every check.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The file tested.
    pub file: String,
    /// Its kind, once loaded.
    pub kind: Option<PluginKind>,
    /// `name version`, once loaded.
    pub plugin: Option<String>,
    /// The contract version it was built against.
    pub wit_version: Option<String>,
    /// Its SHA-256.
    pub sha256: Option<String>,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// True when no check failed.
    pub ok: bool,
}

/// Details kept per failing check.
const MAX_DETAILS: usize = 12;

/// Runs every check on `options.file`.
pub fn run(engine: &PluginEngine, options: &TestOptions) -> anyhow::Result<Report> {
    let bytes = std::fs::read(&options.file)
        .with_context(|| format!("reading {}", options.file.display()))?;
    let mut report = Report {
        file: options.file.display().to_string(),
        kind: None,
        plugin: None,
        wit_version: None,
        sha256: None,
        checks: Vec::new(),
        ok: false,
    };
    let loaded = match options.kind {
        Some(kind) => engine.load(kind, &bytes),
        None => engine.load_any(&bytes),
    };
    let loaded = match loaded {
        Ok(loaded) => Arc::new(loaded),
        Err(err) => {
            report
                .checks
                .push(Check::new("load", Verdict::Fail, err.to_string()));
            return Ok(report);
        }
    };
    report.kind = Some(loaded.kind);
    report.wit_version = Some(loaded.wit_version.clone());
    report.sha256 = Some(loaded.sha256.clone());
    let extra_frames = match &options.frames {
        Some(file) => read_frames(file)?,
        None => Vec::new(),
    };
    let checks = match loaded.kind {
        PluginKind::Normalizer => {
            let cases = match &options.golden {
                Some(file) => conformance::parse_cases(
                    &std::fs::read_to_string(file)
                        .with_context(|| format!("reading {}", file.display()))?,
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
                None => conformance::normalizer_cases().map_err(anyhow::Error::msg)?,
            };
            normalizer_checks(engine, &loaded, &cases, &extra_frames, options, &mut report)
        }
        PluginKind::Health => health_checks(engine, &loaded, &extra_frames, options, &mut report),
    };
    report.checks.extend(checks?);
    report.ok = report.checks.iter().all(|c| c.verdict != Verdict::Fail);
    if report.ok {
        // A component that passes is kept in the compiled cache (as the
        // host keeps an accepted one), so testing it again is fast.
        engine.keep(&loaded);
    }
    Ok(report)
}

/// Prints `report` for a person: one line per check, details indented.
pub fn print(report: &Report) {
    let what = match (&report.kind, &report.plugin) {
        (Some(kind), Some(plugin)) => format!(
            "{kind} plugin {plugin} (tickstock:plugins@{}, sha256 {})",
            report.wit_version.as_deref().unwrap_or("?"),
            report
                .sha256
                .as_deref()
                .map_or("?", |s| &s[..s.len().min(12)]),
        ),
        _ => "not loaded".to_string(),
    };
    println!("{}: {what}", report.file);
    for check in &report.checks {
        let label = match check.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Info => "INFO",
        };
        println!("{label}  {:<12} {}", check.name, check.summary);
        for line in &check.details {
            println!("      {line}");
        }
    }
    let count = |v| report.checks.iter().filter(|c| c.verdict == v).count();
    println!(
        "{}: {} passed, {} failed, {} informational",
        if report.ok { "ok" } else { "FAILED" },
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Info)
    );
}

fn read_frames(file: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// Call durations and the instance's memory, for the INFO lines.
#[derive(Default)]
struct Costs {
    calls: Vec<Duration>,
    memory_bytes: usize,
}

impl Costs {
    fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let out = f();
        self.calls.push(start.elapsed());
        out
    }

    fn checks(mut self, engine: &PluginEngine) -> Vec<Check> {
        let limits = engine.limits();
        self.calls.sort_unstable();
        let q = |p: f64| {
            let i = ((self.calls.len().saturating_sub(1)) as f64 * p).round() as usize;
            self.calls.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        vec![
            Check::new(
                "latency",
                Verdict::Info,
                format!(
                    "{} calls: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (the host's deadline: {} ms per call)",
                    self.calls.len(),
                    q(0.5),
                    q(0.99),
                    q(1.0),
                    limits.deadline.as_millis()
                ),
            ),
            Check::new(
                "memory",
                Verdict::Info,
                format!(
                    "peak linear memory and tables {:.1} MiB (the host's limit: {:.0} MiB per instance)",
                    mib(self.memory_bytes),
                    mib(limits.memory_bytes)
                ),
            ),
        ]
    }
}

fn gate<W: World>(plugin: &mut crate::plugins::Plugin<W>) -> Check {
    let what = match W::KIND {
        PluginKind::Normalizer => "the golden frames",
        PluginKind::Health => "the scripted session",
    };
    match W::conformance(plugin) {
        Ok(()) => Check::new(
            "conformance",
            Verdict::Pass,
            format!("the host's gate before a hot swap ({what})"),
        ),
        Err(problems) => Check::pass_or_fail(
            "conformance",
            problems,
            format!("the host's gate before a hot swap ({what}) refuses it"),
        ),
    }
}

fn normalizer_checks(
    engine: &PluginEngine,
    loaded: &Arc<LoadedComponent>,
    cases: &[Case],
    extra: &[String],
    options: &TestOptions,
    report: &mut Report,
) -> anyhow::Result<Vec<Check>> {
    let mut plugin = NormalizerPlugin::new(engine, loaded.clone())?;
    report.plugin = Some(format!("{} {}", plugin.info().name, plugin.info().version));
    let mut checks = vec![gate(&mut plugin)];
    let mut costs = Costs::default();

    // Golden frames, each failing case with its frame and a diff.
    let mut problems = Vec::new();
    for case in cases {
        match costs.time(|| plugin.normalize_frame(&case.frame)) {
            Ok(out) => {
                let wrong = conformance::case_problems(case, &out, Strictness::Superset);
                if !wrong.is_empty() {
                    problems.extend(wrong);
                    problems.push(format!("  frame: {}", clip(&case.frame)));
                    for want in &case.ticks {
                        problems.push(format!("  - want {want}"));
                    }
                    for got in &out.ticks {
                        problems.push(format!("  + got  {}", got.payload));
                    }
                }
            }
            Err(err) => problems.push(format!("{}: call failed: {err}", case.name)),
        }
    }
    let summary = format!("{} golden frames", cases.len());
    checks.push(Check::pass_or_fail("golden", problems, summary));

    // Hostile input: the plugin must answer every frame.
    let mut corpus: Vec<String> = cases.iter().map(|c| c.frame.clone()).collect();
    corpus.extend(extra.iter().cloned());
    let fuzzed = fuzz::frames(&corpus, options.fuzz, options.seed);
    let mut outputs = Vec::with_capacity(fuzzed.len());
    let mut failures = Vec::new();
    for frame in &fuzzed {
        let out = costs.time(|| plugin.normalize_frame(frame));
        if let Err(err) = &out {
            failures.push(format!("{err} on frame {}", clip(frame)));
        }
        outputs.push(outcome(&out));
    }
    checks.push(Check::pass_or_fail(
        "fuzz",
        capped(failures, fuzzed.len()),
        format!(
            "{} mutated and hostile frames (seed {}): every one answered, no trap, deadline or oversized result",
            fuzzed.len(),
            options.seed
        ),
    ));
    costs.memory_bytes = plugin.memory_bytes();

    // The same frames through a fresh instance give the same outputs (a
    // failure of the same kind counts as the same outcome).
    let mut fresh = NormalizerPlugin::new(engine, loaded.clone())?;
    let mut differ = Vec::new();
    for (frame, first) in fuzzed.iter().zip(&outputs) {
        let again = outcome(&fresh.normalize_frame(frame));
        if again != *first {
            differ.push(format!(
                "frame {}: first {first}, then {again}",
                clip(frame)
            ));
        }
    }
    checks.push(Check::pass_or_fail(
        "determinism",
        capped(differ, fuzzed.len()),
        format!(
            "{} frames through a fresh instance: the same outputs",
            fuzzed.len()
        ),
    ));
    checks.extend(costs.checks(engine));

    // What a consumer would see change, against the default normalizer.
    let default = engine.load(PluginKind::Normalizer, embedded::NORMALIZER)?;
    let mut reference = NormalizerPlugin::new(engine, Arc::new(default))?;
    let mut diff = OutputDiff::default();
    for frame in &corpus {
        if let (Ok(want), Ok(got)) = (
            reference.normalize_frame(frame),
            fresh.normalize_frame(frame),
        ) {
            diff.output_counts(want.ticks.len(), got.ticks.len());
            for (w, g) in want.ticks.iter().zip(&got.ticks) {
                diff.payloads(&w.payload, &g.payload);
            }
        }
    }
    checks.push(Check::new(
        "vs default",
        Verdict::Info,
        format!(
            "payloads against {} {}: {}",
            reference.info().name,
            reference.info().version,
            diff.summary()
        ),
    ));
    Ok(checks)
}

/// A call's outcome as one comparable string: the output, or the kind of
/// failure.
fn outcome(result: &Result<crate::plugins::Normalized, crate::plugins::CallError>) -> String {
    match result {
        Ok(out) => fingerprint(out),
        Err(err) => format!("failed ({})", err.kind()),
    }
}

/// A normalizer's output as one comparable string.
fn fingerprint(out: &crate::plugins::Normalized) -> String {
    let ticks: Vec<String> = out
        .ticks
        .iter()
        .map(|t| format!("{:?}|{}", t.tick, t.payload))
        .collect();
    let skipped: Vec<String> = out
        .skipped
        .iter()
        .map(|s| format!("{}|{:?}|{}", skip_reason_label(s.reason), s.ev, s.detail))
        .collect();
    format!("ticks {ticks:?} skipped {skipped:?}")
}

fn health_checks(
    engine: &PluginEngine,
    loaded: &Arc<LoadedComponent>,
    frames: &[String],
    options: &TestOptions,
    report: &mut Report,
) -> anyhow::Result<Vec<Check>> {
    let mut plugin = HealthPlugin::new(engine, loaded.clone())?;
    report.plugin = Some(format!("{} {}", plugin.info().name, plugin.info().version));
    let mut checks = vec![gate(&mut plugin)];
    let mut costs = Costs::default();
    let script = session::script(engine, frames)?;

    // Hostile input: odd ticks, clocks going backwards, odd host states.
    let mut hostile = HealthPlugin::new(engine, loaded.clone())?;
    let mut failures = Vec::new();
    let steps = fuzz::health_steps(options.fuzz, options.seed);
    for step in &steps {
        if let Err(err) = costs.time(|| session::apply(&mut hostile, step)) {
            failures.push(format!("{err} on {}", step.describe()));
        }
    }
    checks.push(Check::pass_or_fail(
        "fuzz",
        capped(failures, steps.len()),
        format!(
            "{} hostile tick batches and reports (seed {}): no trap, deadline or oversized result",
            steps.len(),
            options.seed
        ),
    ));

    // Two fresh instances given the same session report the same. A call
    // that fails on this ordinary input fails the check, with the error.
    let mut once = HealthPlugin::new(engine, loaded.clone())?;
    let first = session::run(&mut once, &script, &mut costs);
    costs.memory_bytes = once.memory_bytes().max(hostile.memory_bytes());
    let mut fresh = HealthPlugin::new(engine, loaded.clone())?;
    let again = session::run(&mut fresh, &script, &mut Costs::default());
    let reports = first.as_ref().map_or(0, Vec::len);
    checks.push(Check::pass_or_fail(
        "determinism",
        match (&first, &again) {
            (Ok(a), Ok(b)) => session::differences(a, b),
            (Err(e), _) | (_, Err(e)) => vec![format!("{e:#}")],
        },
        format!("{reports} reports of the same session from a fresh instance: identical"),
    ));

    // Export half way, import into a fresh instance, continue both.
    let (before, after) = script.split_at(script.len() / 2);
    let mut old = HealthPlugin::new(engine, loaded.clone())?;
    let mut new = HealthPlugin::new(engine, loaded.clone())?;
    let problems = match session::run(&mut old, before, &mut Costs::default()) {
        Err(e) => vec![format!("{e:#}")],
        Ok(_) => match old.export_state() {
            Err(err) => vec![format!("export_state failed: {err}")],
            Ok(state) => match new.import_state(&state, old.info()) {
                Err(err) => vec![format!("import_state failed: {err}")],
                Ok(Err(refused)) => vec![format!("import_state refused its own state: {refused}")],
                Ok(Ok(())) => {
                    let kept = session::run(&mut old, after, &mut Costs::default());
                    let carried = session::run(&mut new, after, &mut Costs::default());
                    match (kept, carried) {
                        (Ok(a), Ok(b)) => session::differences(&a, &b),
                        (Err(e), _) | (_, Err(e)) => vec![format!("{e:#}")],
                    }
                }
            },
        },
    };
    checks.push(Check::pass_or_fail(
        "state",
        problems,
        "export, import into a fresh instance: the same reports afterwards".into(),
    ));
    checks.extend(costs.checks(engine));

    // The metric set against the default health plugin's.
    let default = engine.load(PluginKind::Health, embedded::HEALTH)?;
    let mut reference = HealthPlugin::new(engine, Arc::new(default))?;
    let want = session::run(&mut reference, &script, &mut Costs::default())?;
    let mut diff = OutputDiff::default();
    for (w, g) in want.iter().zip(first.iter().flatten()) {
        diff.metrics(&w.metrics, &g.metrics);
    }
    checks.push(Check::new(
        "vs default",
        Verdict::Info,
        format!(
            "metrics against {} {}: {}",
            reference.info().name,
            reference.info().version,
            diff.summary()
        ),
    ));
    Ok(checks)
}

/// At most [`MAX_DETAILS`] lines, and how many more there were of `total`.
fn capped(mut lines: Vec<String>, total: usize) -> Vec<String> {
    let all = lines.len();
    if all > MAX_DETAILS {
        lines.truncate(MAX_DETAILS);
        lines.push(format!("... {} failures in all, of {total}", all));
    }
    lines
}

/// A frame or value quoted in a detail line, kept short, with its size
/// when it was cut.
fn clip(text: &str) -> String {
    const QUOTE_BYTES: usize = 160;
    if text.len() <= QUOTE_BYTES {
        return text.to_string();
    }
    format!("{} ({} bytes)", diff::clip(text, QUOTE_BYTES), text.len())
}

/// A health session: tick batches and reports, run the same way on any
/// instance.
mod session {
    use super::*;
    use crate::plugins::bindings::HealthReport;

    /// One step of a session.
    pub enum Step {
        Observe(Vec<Tick>, i64),
        Report(i64, HostState),
    }

    impl Step {
        pub fn describe(&self) -> String {
            clip(&match self {
                Step::Observe(ticks, now) => format!(
                    "observe of {} ticks at {now} (first: {:?})",
                    ticks.len(),
                    ticks.first().map(|t| clip(&t.symbol))
                ),
                Step::Report(now, host) => format!("report at {now} with {host:?}"),
            })
        }
    }

    pub fn host_state() -> HostState {
        HostState {
            window_ms: 10_000,
            subscribed_symbols: 50,
            feed_connected: true,
            bus_connected: true,
            dropped_since_last_report: 0,
            issues: Vec::new(),
        }
    }

    /// Twenty seconds of ticks in batches every 100 ms with a report every
    /// second: the author's frames (normalized by the default normalizer)
    /// when given, otherwise 50 symbols trading.
    pub fn script(engine: &PluginEngine, frames: &[String]) -> anyhow::Result<Vec<Step>> {
        let batches: Vec<Vec<Tick>> = if frames.is_empty() {
            (0..200)
                .map(|i| {
                    (0..20)
                        .map(|j| tick(&format!("SYM{}", (i * 7 + j) % 50), i * 20 + j))
                        .collect()
                })
                .collect()
        } else {
            let default = engine.load(PluginKind::Normalizer, embedded::NORMALIZER)?;
            let mut normalizer = NormalizerPlugin::new(engine, Arc::new(default))?;
            let mut batches = Vec::new();
            for frame in frames {
                if let Ok(out) = normalizer.normalize_frame(frame) {
                    batches.push(out.ticks.into_iter().map(|t| t.tick).collect());
                }
            }
            batches
        };
        let t0 = 1_700_000_000_000;
        let mut steps = Vec::new();
        let mut now = t0;
        for (i, batch) in batches.into_iter().enumerate() {
            now = t0 + i as i64 * 100;
            steps.push(Step::Observe(batch, now));
            if i % 10 == 9 {
                steps.push(Step::Report(now, host_state()));
            }
        }
        // Every session, however short, ends with reports to compare (two:
        // the state check compares the second half).
        for _ in 0..2 {
            now += 1_000;
            steps.push(Step::Report(now, host_state()));
        }
        Ok(steps)
    }

    pub fn tick(symbol: &str, n: i64) -> Tick {
        Tick {
            symbol: symbol.to_string(),
            price: 100.0 + (n % 97) as f64 * 0.25,
            size: 100,
            timestamp_ms: 1_700_000_000_000 + n,
            sequence: Some(n as u64),
            kind: Some(EventKind::Trade),
            exchange: Some(4),
        }
    }

    pub fn apply(
        plugin: &mut HealthPlugin,
        step: &Step,
    ) -> Result<Option<HealthReport>, crate::plugins::CallError> {
        match step {
            Step::Observe(ticks, now) => plugin.observe(ticks, *now).map(|()| None),
            Step::Report(now, host) => plugin.report(*now, host).map(Some),
        }
    }

    /// The session's reports; a failed call is an error here (the fuzz
    /// check is where failures are expected and counted).
    pub fn run(
        plugin: &mut HealthPlugin,
        steps: &[Step],
        costs: &mut Costs,
    ) -> anyhow::Result<Vec<HealthReport>> {
        let mut reports = Vec::new();
        for step in steps {
            let out = costs
                .time(|| apply(plugin, step))
                .with_context(|| step.describe())?;
            reports.extend(out);
        }
        Ok(reports)
    }

    /// Report by report, what differs: status, reason, each metric. No
    /// report at all is a difference too: nothing was compared.
    pub fn differences(first: &[HealthReport], second: &[HealthReport]) -> Vec<String> {
        let mut lines = Vec::new();
        if first.is_empty() {
            lines.push("no report to compare".to_string());
        }
        if first.len() != second.len() {
            lines.push(format!("{} reports, then {}", first.len(), second.len()));
        }
        for (i, (a, b)) in first.iter().zip(second).enumerate() {
            let mut what = Vec::new();
            if a.status != b.status {
                what.push(format!("status {:?} -> {:?}", a.status, b.status));
            }
            if a.reason != b.reason {
                what.push(format!(
                    "reason {:?} -> {:?}",
                    clip(&a.reason),
                    clip(&b.reason)
                ));
            }
            let (ma, mb) = (metric_object(&a.metrics), metric_object(&b.metrics));
            for (name, va) in &ma {
                match mb.get(name) {
                    Some(vb) if vb == va => {}
                    Some(vb) => what.push(format!("{name} {va} -> {vb}")),
                    None => what.push(format!("{name} {va} -> (missing)")),
                }
            }
            for (name, vb) in &mb {
                if !ma.contains_key(name) {
                    what.push(format!("{name} (missing) -> {vb}"));
                }
            }
            if !what.is_empty() {
                lines.push(format!("report {i}: {}", clip(&what.join(", "))));
            }
        }
        lines.truncate(MAX_DETAILS);
        lines
    }
}

/// Hostile input, generated from a seed.
mod fuzz {
    use super::session::{self, Step};
    use super::*;

    /// Inputs no frame of a real feed looks like, each a known way to
    /// break a parser.
    fn specials() -> Vec<String> {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let long_symbol = format!(
            r#"[{{"ev":"T","sym":"{}","p":1.5,"s":1,"t":1}}]"#,
            "A".repeat(100_000)
        );
        let many: Vec<String> = (0..5_000)
            .map(|i| format!(r#"{{"ev":"T","sym":"S{i}","p":1.5,"s":1,"t":{i}}}"#))
            .collect();
        vec![
            String::new(),
            " ".into(),
            "null".into(),
            "{}".into(),
            "[]".into(),
            "[null]".into(),
            "[{}]".into(),
            "[1,2,3]".into(),
            r#"[{"ev":"T"}]"#.into(),
            r#"[{"ev":null,"sym":7}]"#.into(),
            r#"[{"ev":"T","sym":"A","p":1e400,"s":1,"t":1}]"#.into(),
            r#"[{"ev":"T","sym":"A","p":-1,"s":-1,"t":-1}]"#.into(),
            r#"[{"ev":"T","sym":"A","p":"1.5","s":"10","t":"1"}]"#.into(),
            r#"[{"ev":"T","sym":"A","p":1.5,"s":18446744073709551616,"t":9223372036854775808}]"#
                .into(),
            r#"[{"ev":"T","sym":"\u0000\ud83d\ude00","p":1.5,"s":1,"t":1}]"#.into(),
            r#"[{"ev":"T","sym":"A","p":1.5,"s":1,"t":1,"ev":"Q"}]"#.into(),
            "[{\"ev\":\"T\",\"sym\":\"A\",\"p\":1.5,\"s\":1,\"t\":1}".into(),
            deep,
            long_symbol,
            format!("[{}]", many.join(",")),
        ]
    }

    /// The corpus, the specials, then `count` mutations of the corpus.
    pub fn frames(corpus: &[String], count: usize, seed: u64) -> Vec<String> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut out: Vec<String> = corpus.to_vec();
        out.extend(specials());
        if corpus.is_empty() {
            return out;
        }
        for _ in 0..count {
            let base = corpus[rng.usize(..corpus.len())].as_bytes();
            let mut bytes = base.to_vec();
            for _ in 0..rng.usize(1..4) {
                mutate(&mut rng, &mut bytes, corpus);
            }
            out.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        out
    }

    fn mutate(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>, corpus: &[String]) {
        const TOKENS: &[&str] = &[
            "null",
            "-1",
            "1e308",
            "\"\"",
            "[]",
            "{}",
            "\"T\"",
            "\"Q\"",
            "\"A\"",
            "\"AM\"",
            "\"status\"",
            "0.0",
            "18446744073709551615",
            "\"\\u0000\"",
            ",",
            ":",
            "\"",
        ];
        let at = |rng: &mut fastrand::Rng, bytes: &Vec<u8>| rng.usize(..=bytes.len());
        match rng.u8(..6) {
            0 if !bytes.is_empty() => {
                let i = rng.usize(..bytes.len());
                bytes[i] = rng.u8(0x20..0x7f);
            }
            1 => {
                let i = at(rng, bytes);
                bytes.truncate(i);
            }
            2 if !bytes.is_empty() => {
                let i = rng.usize(..bytes.len());
                let j = rng.usize(i..=bytes.len().min(i + 32));
                bytes.drain(i..j);
            }
            3 => {
                let i = at(rng, bytes);
                let j = rng.usize(i..=bytes.len());
                let copy = bytes[i..j].to_vec();
                bytes.splice(i..i, copy);
            }
            4 => {
                let i = at(rng, bytes);
                let token = TOKENS[rng.usize(..TOKENS.len())].as_bytes();
                bytes.splice(i..i, token.iter().copied());
            }
            _ => {
                let other = corpus[rng.usize(..corpus.len())].as_bytes();
                let i = at(rng, bytes);
                bytes.truncate(i);
                bytes.extend_from_slice(&other[rng.usize(..=other.len())..]);
            }
        }
    }

    /// Hostile health input: odd symbols and numbers, empty and large
    /// batches, time going backwards and to the extremes, odd host states.
    pub fn health_steps(count: usize, seed: u64) -> Vec<Step> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let symbols = [
            String::new(),
            "A".repeat(10_000),
            "\u{0}\u{1F600}".into(),
            "AAPL".into(),
            "aapl".into(),
        ];
        let prices = [f64::NAN, f64::INFINITY, -0.0, -1.0, f64::MAX, 1e-300];
        let times = [i64::MIN, -1, 0, 1_700_000_000_000, i64::MAX];
        let mut steps = Vec::new();
        for i in 0..count {
            let now = if rng.u8(..4) == 0 {
                times[rng.usize(..times.len())]
            } else {
                1_700_000_000_000 + rng.i64(-100_000..100_000)
            };
            if i % 5 == 4 {
                let mut host = session::host_state();
                host.window_ms = [0, 1, u64::MAX, 10_000][rng.usize(..4)];
                host.subscribed_symbols = [0, u32::MAX, 50][rng.usize(..3)];
                host.feed_connected = rng.bool();
                host.bus_connected = rng.bool();
                host.dropped_since_last_report = [0, u64::MAX][rng.usize(..2)];
                host.issues = (0..rng.usize(..20)).map(|k| "x".repeat(k * 50)).collect();
                steps.push(Step::Report(now, host));
                continue;
            }
            let n = [0, 1, 10, 2_000][rng.usize(..4)];
            let ticks = (0..n)
                .map(|k| {
                    let mut tick = session::tick(&symbols[rng.usize(..symbols.len())], k);
                    tick.price = prices[rng.usize(..prices.len())];
                    tick.size = [0, u64::MAX][rng.usize(..2)];
                    tick.timestamp_ms = times[rng.usize(..times.len())];
                    tick.sequence = [None, Some(u64::MAX)][rng.usize(..2)];
                    tick.kind = [None, Some(EventKind::Quote)][rng.usize(..2)];
                    tick
                })
                .collect();
            steps.push(Step::Observe(ticks, now));
        }
        steps
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn mutations_are_reproducible_from_the_seed() {
            let corpus = vec![r#"[{"ev":"T","sym":"A","p":1.5,"s":1,"t":1}]"#.to_string()];
            assert_eq!(frames(&corpus, 50, 7), frames(&corpus, 50, 7));
            assert_ne!(frames(&corpus, 50, 7), frames(&corpus, 50, 8));
            assert_eq!(frames(&corpus, 50, 7).len(), 1 + specials().len() + 50);
        }
    }
}

/// Runs the harness for the CLI: prints, and returns whether it passed.
pub fn run_cli(engine: &PluginEngine, options: &TestOptions) -> anyhow::Result<bool> {
    let report = run(engine, options)?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(report.ok)
}
