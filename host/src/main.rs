//! The `tickstock` binary: parse the command line, start logging, run a role.

/// mimalloc instead of the system allocator: every tick's payload is
/// allocated on the normalizer thread and freed on a runtime thread, and
/// glibc's malloc serializes such cross-thread frees on its arena lock
/// (`perf` at full load: malloc_consolidate, _int_free and _int_malloc
/// near the top of both threads). Measured by hand, `simulate --rate 0
/// --batch 100` into `ingest`: 424,000 -> 555,000 ticks/s on average over
/// four alternating pairs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
