//! `tickstock plugins list | install KIND FILE | rollback KIND | shadow KIND
//! [FILE] [--for D] [--stop] | promote KIND`: a client of a running host's
//! admin API. The token comes from `TICKSTOCK_ADMIN_TOKEN`.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::cli::{PluginsAction, PluginsArgs};

/// Environment variable holding the admin token.
pub const TOKEN_ENV: &str = "TICKSTOCK_ADMIN_TOKEN";

/// Runs a `plugins` subcommand against a running host.
pub fn run(args: PluginsArgs) -> anyhow::Result<ExitCode> {
    let token = std::env::var(TOKEN_ENV)
        .with_context(|| format!("{TOKEN_ENV} must hold the host's admin token"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(call(args, token))
}

async fn call(args: PluginsArgs, token: String) -> anyhow::Result<ExitCode> {
    let base = args.admin_url.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let request = match &args.action {
        PluginsAction::List => client.get(format!("{base}/admin/plugins")),
        PluginsAction::Install { kind, file } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            client
                .post(format!("{base}/admin/plugins/{kind}"))
                .header("content-type", "application/wasm")
                .body(bytes)
        }
        PluginsAction::Rollback { kind } => {
            client.post(format!("{base}/admin/plugins/{kind}/rollback"))
        }
        PluginsAction::Promote { kind } => {
            client.post(format!("{base}/admin/plugins/{kind}/shadow/promote"))
        }
        PluginsAction::Shadow {
            kind,
            file,
            duration,
            stop,
        } => {
            let shadow = Shadow {
                client: &client,
                url: format!("{base}/admin/plugins/{kind}/shadow"),
                token: &token,
            };
            return shadow.run(file.as_deref(), *duration, *stop).await;
        }
    };
    let sending = request.bearer_auth(&token).send();
    let response = match &args.action {
        PluginsAction::Install { kind, file } => {
            eprintln!(
                "installing {} as the {kind}: the host validates, compiles (a large component takes ten seconds or more; the same bytes again come from the cache) and checks it, then swaps",
                file.display()
            );
            with_progress(sending).await
        }
        _ => sending.await,
    }
    .with_context(|| format!("cannot reach the admin API at {base}"))?;
    let Some(body) = answer(response).await else {
        return Ok(ExitCode::FAILURE);
    };
    if let (Some(issued), false) = (
        body.get("fleet"),
        matches!(args.action, PluginsAction::List),
    ) {
        print_issued(issued);
        return await_convergence(&client, &base, &token).await;
    }
    match &args.action {
        PluginsAction::List => print_list(&body),
        _ => {
            let i = &body["installed"];
            println!(
                "{} is now {} {} (was {}), loaded in {} ms ({}), hot path paused {} µs{}",
                i["kind"].as_str().unwrap_or("?"),
                i["name"].as_str().unwrap_or("?"),
                i["version"].as_str().unwrap_or("?"),
                i["previous_version"].as_str().unwrap_or("none"),
                i["load_ms"],
                i["loaded_from"].as_str().unwrap_or("?"),
                i["pause_us"],
                i["state"]
                    .as_str()
                    .map(|s| format!("; state {s}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tickstock plugins shadow`: start, follow, show or stop a shadow run.
struct Shadow<'a> {
    client: &'a reqwest::Client,
    url: String,
    token: &'a str,
}

impl Shadow<'_> {
    async fn run(
        &self,
        file: Option<&std::path::Path>,
        duration: Option<std::time::Duration>,
        stop: bool,
    ) -> anyhow::Result<ExitCode> {
        if stop {
            return self.print(self.client.delete(&self.url)).await;
        }
        let Some(file) = file else {
            return self.print(self.client.get(&self.url)).await;
        };
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let mut start = self.client.post(&self.url).body(bytes);
        if let Some(d) = duration {
            start = start.query(&[("for", d.as_secs_f64())]);
        }
        eprintln!(
            "starting a shadow of {}: the host validates and compiles it first",
            file.display()
        );
        let Some(report) = self.send(start).await? else {
            return Ok(ExitCode::FAILURE);
        };
        if report.is_null() {
            return Ok(ExitCode::SUCCESS);
        }
        println!("{}", summary(&report));
        let Some(duration) = duration else {
            println!("running until `tickstock plugins shadow --stop KIND`; `tickstock plugins shadow KIND` shows the report");
            return Ok(ExitCode::SUCCESS);
        };
        // Follow it until it ends, then print the final report in full.
        let until = std::time::Instant::now() + duration + std::time::Duration::from_secs(30);
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            let Some(report) = self.send(self.client.get(&self.url)).await? else {
                return Ok(ExitCode::FAILURE);
            };
            if report["ended_at"].is_string() || std::time::Instant::now() > until {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}", summary(&report));
        }
    }

    /// Sends, prints the report in full.
    async fn print(&self, request: reqwest::RequestBuilder) -> anyhow::Result<ExitCode> {
        match self.send(request).await? {
            Some(Value::Null) => Ok(ExitCode::SUCCESS),
            Some(report) => {
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(ExitCode::SUCCESS)
            }
            None => Ok(ExitCode::FAILURE),
        }
    }

    /// The report in the answer, or `None` after printing the error.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Option<Value>> {
        let response = request
            .bearer_auth(self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.url))?;
        let Some(body) = answer(response).await else {
            return Ok(None);
        };
        if let Some(issued) = body.get("fleet") {
            // Issued to the fleet: each instance reports its own shadow.
            print_issued(issued);
            return Ok(Some(Value::Null));
        }
        Ok(Some(body["shadow"].clone()))
    }
}

/// The JSON body of a successful answer; for an error, prints the host's
/// reason and gives `None`.
async fn answer(response: reqwest::Response) -> Option<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Some(body)
    } else {
        let reason = body["error"].as_str().unwrap_or("no details");
        eprintln!("error: {status}: {reason}");
        None
    }
}

/// One line for a command issued to the fleet.
fn print_issued(issued: &Value) {
    let sha = issued["sha256"].as_str().unwrap_or("");
    println!(
        "issued to the fleet: {} {} generation {}{}{} (announced to {} processes)",
        issued["kind"].as_str().unwrap_or("?"),
        issued["action"].as_str().unwrap_or("?"),
        issued["generation"],
        match (issued["name"].as_str(), issued["version"].as_str()) {
            (Some(n), Some(v)) => format!(", {n} {v}"),
            _ => String::new(),
        },
        if sha.is_empty() {
            String::new()
        } else {
            format!(" ({})", crate::fleet::agent::short(sha))
        },
        issued["announced_to"],
    );
}

/// How long a fleet command is followed until every instance runs the
/// desired versions.
const CONVERGE_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Follows the fleet's roster until every live instance runs the desired
/// versions (exit 0), or prints who does not after [`CONVERGE_WITHIN`]
/// (exit 1).
async fn await_convergence(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<ExitCode> {
    let until = std::time::Instant::now() + CONVERGE_WITHIN;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let response = client
            .get(format!("{base}/admin/plugins"))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {base}"))?;
        let Some(body) = answer(response).await else {
            return Ok(ExitCode::FAILURE);
        };
        let converged = body["fleet"]["converged"].as_bool() == Some(true);
        if converged || std::time::Instant::now() > until {
            print_fleet(&body["fleet"]);
            if !converged {
                eprintln!(
                    "error: not every instance runs the desired versions after {CONVERGE_WITHIN:?}"
                );
                return Ok(ExitCode::FAILURE);
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// The fleet's desired state and its instances, one line each.
fn print_fleet(fleet: &Value) {
    if let Some(err) = fleet["error"].as_str() {
        println!("fleet: {err}");
        return;
    }
    for (kind, d) in fleet["desired"].as_object().into_iter().flatten() {
        println!(
            "fleet desired {kind}: generation {} {} {} (issued {})",
            d["generation"],
            d["action"].as_str().unwrap_or("?"),
            crate::fleet::agent::short(d["sha256"].as_str().unwrap_or("")),
            d["issued_at"].as_str().unwrap_or("?"),
        );
    }
    println!(
        "{:<36} {:<9} {:<16} {:<28} {:<28} MATCHES",
        "INSTANCE", "ROLE", "HOST", "NORMALIZER", "HEALTH"
    );
    for m in fleet["instances"].as_array().into_iter().flatten() {
        let running = |kind: &str| {
            let a = &m["active"][kind];
            match a["version"].as_str() {
                Some(v) => format!(
                    "{} ({})",
                    v,
                    crate::fleet::agent::short(a["sha256"].as_str().unwrap_or(""))
                ),
                None => "-".to_string(),
            }
        };
        let matches = m["matches"]
            .as_object()
            .is_none_or(|k| k.values().all(|v| v == true));
        let key = if m["fleet_key"] == true {
            ""
        } else {
            " (no fleet key)"
        };
        println!(
            "{:<36} {:<9} {:<16} {:<28} {:<28} {}{key}",
            m["instance_id"].as_str().unwrap_or("?"),
            m["role"].as_str().unwrap_or("?"),
            m["host"].as_str().unwrap_or("?"),
            running("normalizer"),
            running("health"),
            if matches { "yes" } else { "NO" },
        );
    }
}

/// How often `shadow --for` prints the report while it runs.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// One line of a shadow report.
fn summary(report: &Value) -> String {
    let fields = |what: &str| {
        let names: Vec<&str> = report["fields"][what]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let errors: u64 = report["candidate_errors"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    format!(
        "shadow {} {} vs live {}: {} inputs, {} identical, {} different; fields added: {}; removed: {}; changed: {}; {} candidate errors; {} skipped; p99 live {} ms, candidate {} ms",
        report["kind"].as_str().unwrap_or("?"),
        report["candidate"]["version"].as_str().unwrap_or("?"),
        report["live"]["version"].as_str().unwrap_or("?"),
        report["inputs_compared"],
        report["identical"],
        report["different"],
        fields("added"),
        fields("removed"),
        fields("changed"),
        errors,
        report["skipped_inputs"],
        report["live_latency"]["p99_ms"],
        report["candidate_latency"]["p99_ms"],
    )
}

/// Awaits `request`, printing a line to stderr every [`PROGRESS_EVERY`]
/// while the host works on it.
async fn with_progress<F: std::future::Future>(request: F) -> F::Output {
    let started = std::time::Instant::now();
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    tokio::pin!(request);
    loop {
        tokio::select! {
            done = &mut request => return done,
            _ = ticks.tick() => eprintln!(
                "... still working: {} s (validating, compiling, checking)",
                started.elapsed().as_secs()
            ),
        }
    }
}

/// How often a long install reports that it is still going.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

fn print_list(body: &Value) {
    if body.get("fleet").is_some() {
        print_fleet(&body["fleet"]);
        println!();
    }
    println!(
        "{:<11} {:<16} {:<10} {:<6} {:>10} {:>7} {:>9}  loaded at",
        "KIND", "NAME", "VERSION", "WIT", "CALLS", "ERRORS", "P99 MS"
    );
    for p in body["plugins"].as_array().into_iter().flatten() {
        let a = &p["active"];
        println!(
            "{:<11} {:<16} {:<10} {:<6} {:>10} {:>7} {:>9}  {}",
            p["kind"].as_str().unwrap_or("?"),
            a["name"].as_str().unwrap_or("-"),
            a["version"].as_str().unwrap_or("-"),
            a["wit_version"].as_str().unwrap_or("-"),
            a["calls"],
            a["errors"],
            a["p99_ms"],
            a["loaded_at"].as_str().unwrap_or("-")
        );
        for h in p["history"].as_array().into_iter().flatten() {
            println!(
                "    {} {} {}{}",
                h["at"].as_str().unwrap_or(""),
                h["action"].as_str().unwrap_or(""),
                h["version"].as_str().unwrap_or(""),
                h["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
    }
}
