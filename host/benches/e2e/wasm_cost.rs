//! P2: what running the normalizer and health logic as WebAssembly costs,
//! against the same guest crates compiled natively into the bench, and
//! where the WebAssembly side's time goes.
//!
//! The ratio is the median of alternating rounds (native, WASM, native, ...)
//! on one thread: `normalize-frame` of a frame of `n` trades, then `observe`
//! of its ticks. The breakdown comes from rounds of its own, each a median:
//!
//! - each side's normalize and observe apart;
//! - of the WASM side's time, what the wasmtime calls took (the plugins'
//!   own call statistics: the call with wasmtime's lowering and lifting,
//!   and the host's few bookkeeping steps beside it) and what the host did
//!   around them (unpacking the packed result into ticks and payloads, the
//!   output bounds, packing the batch for `observe`);
//! - the fixed cost of a call: an empty frame (`[]`) and an empty batch;
//! - whole-frame rounds alternating between this engine and one compiled
//!   without the deadline guard (the epoch checks at every function entry
//!   and loop header).
//!
//! From those, [`print_breakdown`] says, per frame size, what the ratio
//! would be without each part, which is what would close the gap.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tickstock::plugins::{
    embedded, CallStats, HealthPlugin, Limits, NormalizerPlugin, PluginEngine, PluginKind,
};

use super::frames;

/// The P2 target: WASM within 1.3x of native.
pub const TARGET: f64 = 1.3;

/// P2 for frames of `n` trades; times are µs per tick.
pub struct WasmCost {
    /// Trades per frame.
    pub n: usize,
    /// WASM over native, the median of the alternating rounds.
    pub ratio: f64,
    /// Native time per tick in the median round.
    pub native: f64,
    /// WASM time per tick in the median round.
    pub wasm: f64,
    /// Native `normalize_frame`, alone.
    pub native_normalize: f64,
    /// Native `observe`, alone.
    pub native_observe: f64,
    /// WASM `normalize_frame`, alone, as the host calls it.
    pub normalize: f64,
    /// Of which inside the wasmtime call.
    pub normalize_in_call: f64,
    /// WASM `observe`, alone, as the host calls it.
    pub observe: f64,
    /// Of which inside the wasmtime call.
    pub observe_in_call: f64,
    /// Inside the calls for an empty frame and an empty batch (a frame's
    /// fixed cost, spread over its `n` ticks).
    pub fixed_in_call: f64,
    /// WASM time without the deadline guard over WASM time with it.
    pub unguarded_share: f64,
}

impl WasmCost {
    /// The host's own work around the two calls, per tick.
    pub fn host_around_calls(&self) -> f64 {
        (self.normalize - self.normalize_in_call) + (self.observe - self.observe_in_call)
    }

    /// Work inside the calls that grows with the ticks: the guest's code
    /// and wasmtime's copying of arguments and results.
    pub fn per_tick_in_calls(&self) -> f64 {
        (self.normalize_in_call + self.observe_in_call - self.fixed_in_call).max(0.0)
    }

    /// The parts measured alone add up to the whole within noise; scale
    /// them to the median round's WASM time so that "without X" subtracts
    /// from the figure the table reports.
    fn scale(&self) -> f64 {
        let parts = self.normalize + self.observe;
        if parts > 0.0 {
            self.wasm / parts
        } else {
            1.0
        }
    }

    /// The ratio if the WASM side's time fell by `saved` µs per tick
    /// (a part measured alone).
    pub fn ratio_without(&self, saved: f64) -> f64 {
        (self.wasm - saved * self.scale()).max(0.0) / self.native
    }

    /// The ratio without the fixed cost of the two calls.
    pub fn without_fixed(&self) -> f64 {
        self.ratio_without(self.fixed_in_call)
    }

    /// The ratio without the host's work around the calls.
    pub fn without_host(&self) -> f64 {
        self.ratio_without(self.host_around_calls())
    }

    /// The ratio on the engine without the deadline guard.
    pub fn without_guard(&self) -> f64 {
        self.ratio * self.unguarded_share
    }

    /// The ratio of the work inside the calls alone.
    pub fn in_calls_only(&self) -> f64 {
        self.ratio_without(self.fixed_in_call + self.host_around_calls())
    }
}

/// Rounds per part of the breakdown (a median is taken).
const PART_ROUNDS: usize = 7;

/// [`PART_ROUNDS`] rounds of `round`.
fn part_rounds<T>(round: impl FnMut() -> T) -> Vec<T> {
    std::iter::repeat_with(round).take(PART_ROUNDS).collect()
}

/// The median of what `pick` reads off each of `rounds`.
fn median_by<T>(rounds: &[T], pick: impl Fn(&T) -> f64) -> f64 {
    median(rounds.iter().map(pick).collect())
}

/// Microseconds per iteration of `f` over `iterations`.
fn per_iteration(iterations: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / iterations as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Nanoseconds inside calls, and calls, recorded by `stats` so far.
fn call_time(stats: &CallStats) -> (u64, u64) {
    (
        stats.total_ns.load(Ordering::Relaxed),
        stats.calls.load(Ordering::Relaxed),
    )
}

/// The two default plugins, live on `engine`.
fn plugins(engine: &PluginEngine) -> (NormalizerPlugin, HealthPlugin) {
    let load = |kind, bytes| Arc::new(engine.load(kind, bytes).unwrap());
    let normalizer =
        NormalizerPlugin::new(engine, load(PluginKind::Normalizer, embedded::NORMALIZER)).unwrap();
    let health = HealthPlugin::new(engine, load(PluginKind::Health, embedded::HEALTH)).unwrap();
    (normalizer, health)
}

/// What the host does with a frame: normalize, then observe its ticks.
fn wasm_frame(
    normalizer: &mut NormalizerPlugin,
    health: &mut HealthPlugin,
    frame: &str,
    now: i64,
) -> usize {
    let out = normalizer
        .normalize_frame(std::hint::black_box(frame))
        .unwrap();
    let ticks: Vec<_> = out.ticks.into_iter().map(|t| t.tick).collect();
    health.observe(&ticks, now).unwrap();
    ticks.len()
}

/// Measures P2 for frames of `n` trades.
pub fn measure(n: usize) -> WasmCost {
    let engine = PluginEngine::new(Limits::default(), None).unwrap();
    let (mut normalizer, mut health) = plugins(&engine);
    let mut native_health = tickstock_health::state::HealthState::default();
    let frame = frames::trades(n);
    let mut now = 1_700_000_000_000i64;
    let mut native = |frame: &str, now: i64| {
        let out = tickstock_normalizer::normalize_frame(std::hint::black_box(frame));
        let symbols: Vec<&str> = out.ticks.iter().map(|t| t.tick.symbol.as_str()).collect();
        native_health.observe(&symbols, now);
        out.ticks.len()
    };
    assert_eq!(native(&frame, now), n);
    assert_eq!(wasm_frame(&mut normalizer, &mut health, &frame, now), n);
    // Enough frames for ~50 ms of native work per round.
    let per_round = (2_000_000 / (n * 20).max(1)).max(50);
    let per_tick = |us_per_frame: f64| us_per_frame / n as f64;

    let mut rounds: Vec<(f64, f64)> = (0..15)
        .map(|_| {
            let a = per_iteration(per_round, || {
                now += 1;
                native(&frame, now);
            });
            let b = per_iteration(per_round, || {
                now += 1;
                wasm_frame(&mut normalizer, &mut health, &frame, now);
            });
            (per_tick(a), per_tick(b))
        })
        .collect();
    rounds.sort_by(|x, y| (x.1 / x.0).total_cmp(&(y.1 / y.0)));
    let (native_us, wasm_us) = rounds[rounds.len() / 2];

    // The parts, each alone. Observe gets the ticks normalize gave.
    let native_ticks = tickstock_normalizer::normalize_frame(&frame);
    let symbols: Vec<&str> = native_ticks
        .ticks
        .iter()
        .map(|t| t.tick.symbol.as_str())
        .collect();
    let ticks: Vec<_> = normalizer
        .normalize_frame(&frame)
        .unwrap()
        .ticks
        .into_iter()
        .map(|t| t.tick)
        .collect();
    let native_normalize = median(part_rounds(|| {
        per_tick(per_iteration(per_round, || {
            std::hint::black_box(tickstock_normalizer::normalize_frame(std::hint::black_box(
                &frame,
            )));
        }))
    }));
    let native_observe = median(part_rounds(|| {
        per_tick(per_iteration(per_round, || {
            now += 1;
            native_health.observe(std::hint::black_box(&symbols), now);
        }))
    }));
    // A round of `f` on a plugin: (µs per tick in all, µs per tick inside
    // the wasmtime calls).
    let with_calls = |stats: &CallStats, f: &mut dyn FnMut()| {
        let (ns0, calls0) = call_time(stats);
        let all = per_iteration(per_round, &mut *f);
        let (ns1, calls1) = call_time(stats);
        assert_eq!(calls1 - calls0, per_round as u64, "one call per frame");
        let in_call = (ns1 - ns0) as f64 / 1e3 / per_round as f64;
        (per_tick(all), per_tick(in_call))
    };
    let normalizer_stats = normalizer.stats().clone();
    let health_stats = health.stats().clone();
    let normalize_rounds = part_rounds(|| {
        with_calls(&normalizer_stats, &mut || {
            std::hint::black_box(normalizer.normalize_frame(&frame).unwrap());
        })
    });
    let observe_rounds = part_rounds(|| {
        with_calls(&health_stats, &mut || {
            now += 1;
            health.observe(std::hint::black_box(&ticks), now).unwrap();
        })
    });
    let fixed_in_call = median(part_rounds(|| {
        let (_, empty_frame) = with_calls(&normalizer_stats, &mut || {
            let out = normalizer.normalize_frame("[]").unwrap();
            assert!(out.ticks.is_empty());
        });
        let (_, empty_batch) = with_calls(&health_stats, &mut || {
            now += 1;
            health.observe(&[], now).unwrap();
        });
        empty_frame + empty_batch
    }));

    // The same host, engine compiled without epoch checks.
    let unguarded_engine = PluginEngine::without_deadline_guard(Limits::default()).unwrap();
    let (mut bare_normalizer, mut bare_health) = plugins(&unguarded_engine);
    assert_eq!(
        wasm_frame(&mut bare_normalizer, &mut bare_health, &frame, now),
        n
    );
    let shares: Vec<f64> = (0..8)
        .map(|i| {
            let mut guarded = |now: &mut i64| {
                per_iteration(per_round, || {
                    *now += 1;
                    wasm_frame(&mut normalizer, &mut health, &frame, *now);
                })
            };
            let mut bare = |now: &mut i64| {
                per_iteration(per_round, || {
                    *now += 1;
                    wasm_frame(&mut bare_normalizer, &mut bare_health, &frame, *now);
                })
            };
            // Either side first, in turn.
            let (g, b) = if i % 2 == 0 {
                let g = guarded(&mut now);
                (g, bare(&mut now))
            } else {
                let b = bare(&mut now);
                (guarded(&mut now), b)
            };
            b / g
        })
        .collect();

    WasmCost {
        n,
        ratio: wasm_us / native_us,
        native: native_us,
        wasm: wasm_us,
        native_normalize,
        native_observe,
        normalize: median_by(&normalize_rounds, |r| r.0),
        normalize_in_call: median_by(&normalize_rounds, |r| r.1),
        observe: median_by(&observe_rounds, |r| r.0),
        observe_in_call: median_by(&observe_rounds, |r| r.1),
        fixed_in_call,
        unguarded_share: median(shares),
    }
}

/// The profile of a missed P2: where the WASM time goes, per frame size,
/// and what the ratio would be without each part.
pub fn print_breakdown(costs: &[WasmCost]) {
    let cols: Vec<String> = costs.iter().map(|c| format!("frames of {}", c.n)).collect();
    println!();
    println!("P2, where the time goes (µs per tick, each part measured alone; the ratio \"without\" a part scales it to the table's WASM time):");
    println!();
    println!("| | {} |", cols.join(" | "));
    println!("|---|{}", "---|".repeat(costs.len()));
    let line = |label: &str, cell: &dyn Fn(&WasmCost) -> String| {
        let cells: Vec<String> = costs.iter().map(cell).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    line("native: normalize + observe", &|c| {
        format!("{:.3} + {:.3}", c.native_normalize, c.native_observe)
    });
    line(
        "WASM normalize: in the call + host unpacking and bounds",
        &|c| {
            format!(
                "{:.3} + {:.3}",
                c.normalize_in_call,
                c.normalize - c.normalize_in_call
            )
        },
    );
    line("WASM observe: in the call + host packing the batch", &|c| {
        format!(
            "{:.3} + {:.3}",
            c.observe_in_call,
            c.observe - c.observe_in_call
        )
    });
    line(
        "fixed cost of the two calls (an empty frame, an empty batch), per tick",
        &|c| format!("{:.3}", c.fixed_in_call),
    );
    line(
        "work in the calls beyond an empty call's (guest code, epoch checks, copying)",
        &|c| format!("{:.3}", c.per_tick_in_calls()),
    );
    line("ratio measured", &|c| format!("{:.2}x", c.ratio));
    line("ratio without the fixed call cost", &|c| {
        format!("{:.2}x", c.without_fixed())
    });
    line("ratio without the host's work around the calls", &|c| {
        format!("{:.2}x", c.without_host())
    });
    line(
        "ratio without the deadline guard (engine without epoch checks, same run)",
        &|c| format!("{:.2}x", c.without_guard()),
    );
    line("ratio with only the per-tick work in the calls", &|c| {
        format!("{:.2}x", c.in_calls_only())
    });
    println!();
    for c in costs.iter().filter(|c| c.ratio > TARGET) {
        let parts = [
            ("the fixed cost of the two calls", c.without_fixed()),
            (
                "the host's unpacking and packing around them",
                c.without_host(),
            ),
            ("the deadline guard", c.without_guard()),
            (
                "the guard and the host's work together",
                c.without_host() * c.unguarded_share,
            ),
        ];
        let without: Vec<String> = parts
            .iter()
            .map(|(what, ratio)| format!("without {what} {ratio:.2}x"))
            .collect();
        // In the units of the parts measured alone (the median round may
        // have run slower or faster on both sides): the native time that
        // gives the measured ratio, the WASM time the target allows, and
        // what the work in the calls must come down to with the rest as
        // it is.
        let native = (c.normalize + c.observe) / c.ratio;
        let allowed = TARGET * native;
        let rest = c.fixed_in_call + c.host_around_calls();
        let in_calls = c.per_tick_in_calls();
        let closes = match parts.iter().find(|(_, ratio)| *ratio <= TARGET) {
            Some((what, ratio)) => format!("removing {what} ({ratio:.2}x)"),
            None if rest >= allowed => format!(
                "fewer calls per tick and less host work: the fixed cost and the host's work alone take {rest:.2} µs of the {allowed:.2} µs per tick the target allows"
            ),
            None => format!(
                "the work inside the calls (guest code, epoch checks, wasmtime's copying), {in_calls:.2} µs per tick, down to {:.2} µs, {:.2}x the native time of the whole tick (it is {:.2}x now)",
                allowed - rest,
                (allowed - rest) / native,
                in_calls / native
            ),
        };
        println!(
            "- frames of {}: {:.2}x; {}. What would close it: {closes}.",
            c.n,
            c.ratio,
            without.join(", "),
        );
    }
}
