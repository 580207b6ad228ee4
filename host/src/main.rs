//! The `tickstock` binary: parse the command line, start logging, run a role.

mod allocator;

fn main() -> std::process::ExitCode {
    let cli = tickstock::cli::Cli::parse_args();
    tickstock::telemetry::init();
    match tickstock::app::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line.
            tracing::error!("{err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
