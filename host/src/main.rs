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

/// mimalloc's `arena_eager_commit` option: its place in mimalloc 3's
/// `mi_option_e` (libmimalloc-sys names no constant for it).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Makes mimalloc commit arena memory as it is used, not up front: with
/// eager commit the overload run's peak RSS was 80-91 MiB (glibc: 44 MiB),
/// without it 48 MiB, at the same throughput. It must run before the first
/// allocation reserves an arena (setting it in `main` came too late:
/// 79-84 MiB), so it is an ELF constructor that runs before mimalloc's own
/// (a numbered `.init_array` entry runs before the unnumbered ones).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array.00100")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

#[cfg(target_os = "linux")]
extern "C" fn configure_allocator() {
    #[allow(unsafe_code)]
    // SAFETY: mi_option_set only stores an option's value (0 is valid), and
    // mimalloc allows options to be set before it initializes.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0)
    };
}

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
