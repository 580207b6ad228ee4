//! Dispatch from the parsed command line to a role or tool.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the command; returns the exit code (errors carry their context).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plugin(args) => crate::author::run(args.action),
        other => {
            let name = match other {
                Command::Run(_) => "run",
                Command::Ingest(_) => "ingest",
                Command::Process(_) => "process",
                Command::Dashboard(_) => "dashboard",
                Command::Simulate(_) => "simulate",
                Command::Plugins(_) => "plugins",
                Command::Plugin(_) => "plugin",
            };
            anyhow::bail!("`tickstock {name}` is not built yet")
        }
    }
}
