//! `tickstock plugins ...`: the admin API client.

use std::process::ExitCode;

use crate::cli::PluginsArgs;

/// Runs a `plugins` subcommand against a running host.
pub fn run(args: PluginsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "`tickstock plugins` (admin API at {}) is not built yet",
        args.admin_url
    )
}
