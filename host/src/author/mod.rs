//! `tickstock plugin ...`: tools for plugin authors, running components
//! through exactly the runtime the host uses.
//!
//! ```text
//! tickstock plugin new --kind normalizer my-normalizer     # scaffold::new_project
//! tickstock plugin wit wit/                                # scaffold::write_wit
//! tickstock plugin test my_normalizer.wasm                 # harness
//! tickstock plugin check normalizer target/wasm32-wasip2/release/my_normalizer.wasm
//! echo '[{"ev":"T","sym":"AAPL","p":1.5,"s":10,"t":1}]' | tickstock plugin normalize --component my.wasm
//! ```

pub mod harness;
pub mod scaffold;

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use crate::cli::{PluginAction, PluginArgs};
use crate::plugins::{
    embedded, Limits, LoadedComponent, NormalizerPlugin, Plugin, PluginEngine, PluginInfo,
    PluginKind, World,
};
use crate::plugins::{HealthExports, NormalizerExports};

/// Runs a `plugin` subcommand; returns the process exit code.
pub fn run(args: PluginArgs) -> anyhow::Result<ExitCode> {
    let engine = || {
        let cache_dir = args
            .cache_dir
            .clone()
            .or_else(crate::plugins::cache::default_dir);
        PluginEngine::new(Limits::default(), cache_dir.as_deref())
    };
    match args.action.clone() {
        PluginAction::New { kind, lang, dir } => {
            let files = scaffold::new_project(&dir, kind, lang)?;
            println!("wrote a {kind} plugin project into {}:", dir.display());
            for file in files.iter().filter(|f| !f.starts_with("wit/")) {
                println!("  {file}");
            }
            println!("  wit/ (the contract)");
            println!("next: see {}", dir.join("README.md").display());
            Ok(ExitCode::SUCCESS)
        }
        PluginAction::Wit { dir } => {
            for file in scaffold::write_wit(&dir)? {
                println!("{}", dir.join(file).display());
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginAction::Test(options) => {
            let passed = harness::run_cli(&engine()?, &options)?;
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PluginAction::Check { kind, file } => check(&engine()?, kind, &file),
        PluginAction::Normalize { component, frames } => {
            normalize(&engine()?, component.as_deref(), frames.as_deref())
        }
    }
}

fn read(file: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

fn check(engine: &PluginEngine, kind: PluginKind, file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = read(file)?;
    let loaded = engine
        .load(kind, &bytes)
        .with_context(|| format!("{} is refused as a {kind} plugin", file.display()))?;
    let loaded = Arc::new(loaded);
    // The same conformance check the host runs before a hot swap.
    let (info, conformance) = match kind {
        PluginKind::Normalizer => conform::<NormalizerExports>(engine, &loaded)?,
        PluginKind::Health => conform::<HealthExports>(engine, &loaded)?,
    };
    let problems = conformance.err().unwrap_or_default();
    if problems.is_empty() {
        // Accepted: kept in the compiled cache, as the host keeps it.
        engine.keep(&loaded);
    }
    let out = json!({
        "ok": problems.is_empty(),
        "kind": kind,
        "name": info.name,
        "version": info.version,
        "wit_version": loaded.wit_version,
        "sha256": loaded.sha256,
        "size": loaded.size,
        "conformance_problems": problems,
    });
    println!("{out}");
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A throwaway instance of `loaded`, its info and its conformance result.
fn conform<W: World>(
    engine: &PluginEngine,
    loaded: &Arc<LoadedComponent>,
) -> anyhow::Result<(PluginInfo, Result<(), Vec<String>>)> {
    let mut plugin = Plugin::<W>::new(engine, loaded.clone())?;
    let result = W::conformance(&mut plugin);
    Ok((plugin.info().clone(), result))
}

fn normalize(
    engine: &PluginEngine,
    component: Option<&Path>,
    frames: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let bytes = match component {
        Some(file) => read(file)?,
        None => embedded::NORMALIZER.to_vec(),
    };
    let loaded = engine.load(PluginKind::Normalizer, &bytes)?;
    let mut plugin = NormalizerPlugin::new(engine, Arc::new(loaded))?;
    let input: Box<dyn BufRead> = match frames {
        Some(file) => Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut stdout = std::io::stdout().lock();
    let mut failed = false;
    for line in input.lines() {
        let line = line.context("reading frames")?;
        if line.trim().is_empty() {
            continue;
        }
        let out = match plugin.normalize_frame(&line) {
            Ok(n) => json!({
                "ticks": n.ticks.iter().map(|t| serde_json::from_str::<serde_json::Value>(&t.payload)
                    .unwrap_or_else(|_| json!({"invalid_payload": t.payload}))).collect::<Vec<_>>(),
                "skipped": n.skipped.iter().map(|s| json!({
                    "reason": crate::plugins::skip_reason_label(s.reason), "ev": s.ev, "detail": s.detail,
                })).collect::<Vec<_>>(),
            }),
            Err(err) => {
                failed = true;
                json!({"error": err.to_string(), "kind": err.kind()})
            }
        };
        writeln!(stdout, "{out}").context("writing output")?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
