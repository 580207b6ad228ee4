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

/// mimalloc's `arena_eager_commit` and `purge_delay` options: their places
/// in mimalloc 3's `mi_option_e` (libmimalloc-sys names no constants for
/// them; `MIMALLOC_VERBOSE=1 tickstock --version` lists the options by
/// name with their values, which shows these two at 0).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc commit arena memory as it is used, not up front, and give
/// freed pages back at once. `ingest` under the P1 overload, peak RSS
/// (glibc: 45-46 MiB at ~470,000 ticks/s): eager commit 80-91 MiB; lazy
/// commit 54-59 MiB at ~580,000 ticks/s; lazy commit and no purge delay
/// 40 MiB at ~560,000-580,000. The options must be set before the first
/// allocation reserves an arena (set in `main` they came too late: 79-84
/// MiB), so this is an ELF constructor that runs before mimalloc's own (a
/// numbered `.init_array` entry runs before the unnumbered ones).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array.00100")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

#[cfg(target_os = "linux")]
extern "C" fn configure_allocator() {
    for option in [MI_OPTION_ARENA_EAGER_COMMIT, MI_OPTION_PURGE_DELAY] {
        #[allow(unsafe_code)]
        // SAFETY: mi_option_set only stores an option's value (0 is valid
        // for both), and mimalloc allows options to be set before it
        // initializes.
        unsafe {
            libmimalloc_sys::mi_option_set(option, 0)
        };
    }
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
