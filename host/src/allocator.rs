//! The allocator of the `tickstock` binary (and of the benches, which
//! include this file so that they allocate as the product does): mimalloc,
//! with two of its defaults changed before it starts.
//!
//! Why mimalloc: every tick's payload is allocated on the normalizer thread
//! and freed on a runtime thread, and glibc's malloc handles such
//! cross-thread frees slowly (`perf` of `ingest` at full load:
//! `malloc_consolidate`, `_int_free` and `_int_malloc` near the top of both
//! threads). By hand, `simulate --rate 0 --batch 100` into `ingest`:
//! 424,000-468,000 ticks/s with glibc against 555,000-580,000 with
//! mimalloc, on average over alternating runs.
//!
//! Why the two options: with mimalloc's defaults `ingest`'s peak RSS under
//! that overload was 80-91 MiB (glibc: 44-46 MiB; the stated bound is 64).
//! Committing arena memory as it is used (`arena_eager_commit=0`) took it
//! to 54-59 MiB, and giving freed pages back at once (`purge_delay=0`) to
//! 40-42 MiB, at the same throughput. They are set as defaults, so the
//! `MIMALLOC_ARENA_EAGER_COMMIT` / `MIMALLOC_PURGE_DELAY` environment
//! variables still win; `MIMALLOC_VERBOSE=1 tickstock --version` lists
//! every option by name with its value.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The options' places in mimalloc 3's `mi_option_e` (libmimalloc-sys
/// names no constants for them; the same in mimalloc 2).
#[cfg(target_os = "linux")]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
#[cfg(target_os = "linux")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The defaults must be in place before the first allocation reserves an
/// arena (set in `main` they came too late: 79-84 MiB), so this is an ELF
/// constructor. Priority 100 runs after the C runtime's own and before
/// mimalloc's constructor (unnumbered with gcc, priority 101 with clang).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array.00100")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

#[cfg(target_os = "linux")]
extern "C" fn configure_allocator() {
    for option in [MI_OPTION_ARENA_EAGER_COMMIT, MI_OPTION_PURGE_DELAY] {
        #[allow(unsafe_code)]
        // SAFETY: mi_option_set_default only stores an option's default
        // (0 is valid for both), which mimalloc allows before it starts.
        unsafe {
            libmimalloc_sys::mi_option_set_default(option, 0)
        };
    }
}
