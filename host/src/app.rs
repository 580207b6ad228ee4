//! Dispatch from the parsed command line to a role or tool.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, SimulateArgs};
use crate::config::Config;
use crate::roles;

/// Runs the command; returns the exit code (errors carry their context).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plugin(args) => crate::author::run(args),
        Command::Plugins(args) => crate::admin_client::run(args),
        Command::Run(args) => block_on(roles::run_all(Config::resolve(&args)?)),
        Command::Ingest(args) => block_on(roles::run_ingest(Config::resolve(&args)?)),
        Command::Process(args) => block_on(roles::run_process(Config::resolve(&args)?)),
        Command::Dashboard(args) => block_on(roles::run_dashboard(Config::resolve(&args)?)),
        Command::Simulate(args) => block_on(simulate(args)),
    }
}

fn block_on(
    role: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tickstock")
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(role);
    // Blocking work left behind (a conformance check that outlived its
    // timeout) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    use crate::simulator::{Faults, Simulator, SimulatorConfig};
    let universe = crate::universe::Universe::named(&args.universe)?;
    // A rate no clock can pace (or NaN) would overflow the pacing maths.
    if !(0.0..=10_000_000.0).contains(&args.rate) {
        anyhow::bail!(
            "--rate must be between 0 (as fast as the client reads) and 10000000, got {}",
            args.rate
        );
    }
    if !(1..=100_000).contains(&args.batch) {
        anyhow::bail!("--batch must be between 1 and 100000, got {}", args.batch);
    }
    let huge_frame_every = match (args.huge_frame_every, args.huge_frame_mib) {
        (Some(every), Some(mib @ 1..=1024)) => Some((every, mib << 20)),
        (Some(_), Some(mib)) => {
            anyhow::bail!("--huge-frame-mib must be between 1 and 1024, got {mib}")
        }
        _ => None,
    };
    let config = SimulatorConfig {
        key: args.key,
        rate: args.rate,
        batch: args.batch,
        seed: args.seed.unwrap_or_else(rand::random),
        universe: universe.symbols,
        faults: Faults {
            drop_every: args.drop_every,
            malformed_every: args.malformed_every,
            auth_delay: std::time::Duration::from_millis(args.auth_delay_ms),
            huge_frame_every,
        },
        ..Default::default()
    };
    let sim = Simulator::start(&args.listen, config).await?;
    let cancel = roles::shutdown_signal();
    cancel.cancelled().await;
    sim.shutdown().await;
    Ok(())
}
