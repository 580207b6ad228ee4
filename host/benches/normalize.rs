//! Normalize throughput: the normalizer component through the host runtime
//! (WASM) against the very same parsing code compiled natively, for frames
//! of 1, 10, 100 and 1000 trade events (the performance target names 1, 10
//! and 100), and an empty frame (the fixed cost of a call), in one run.
//! Criterion prints elements/s, i.e. ticks/s (for the empty frame: calls
//! per second, each the whole `normalize_frame` path).
//!
//! `cargo bench -p tickstock --bench normalize`
//! (`TICKSTOCK_BENCH_NORMALIZER=FILE` to measure another component)

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

/// The `tickstock` binary's allocator and its options, so that the
/// in-process measurements (P2's both sides) allocate as the product does.
#[path = "../src/allocator.rs"]
mod allocator;

#[path = "../../tests/common/frames.rs"]
mod frames;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tickstock::plugins::{embedded, Limits, NormalizerPlugin, PluginEngine, PluginKind};

fn normalize(c: &mut Criterion) {
    let engine = PluginEngine::new(Limits::default(), None).unwrap();
    // `TICKSTOCK_BENCH_NORMALIZER=FILE` measures another build of the
    // normalizer (e.g. one left unstripped, for `perf` to name its
    // functions with `TICKSTOCK_WASM_PERF_MAP=1`).
    let bytes = match std::env::var_os("TICKSTOCK_BENCH_NORMALIZER") {
        Some(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}")),
        None => embedded::NORMALIZER.to_vec(),
    };
    let component = Arc::new(engine.load(PluginKind::Normalizer, &bytes).unwrap());
    let mut wasm = NormalizerPlugin::new(&engine, component).unwrap();

    let mut group = c.benchmark_group("normalize");
    for n in [1usize, 10, 100, 1000] {
        let frame = frames::trades(n);
        assert_eq!(wasm.normalize_frame(&frame).unwrap().ticks.len(), n);
        assert_eq!(tickstock_normalizer::normalize_frame(&frame).ticks.len(), n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("native", n), &frame, |b, f| {
            b.iter(|| tickstock_normalizer::normalize_frame(std::hint::black_box(f)))
        });
        group.bench_with_input(BenchmarkId::new("wasm", n), &frame, |b, f| {
            b.iter(|| wasm.normalize_frame(std::hint::black_box(f)).unwrap())
        });
    }
    // The fixed cost of a call: an empty frame through each side.
    group.throughput(Throughput::Elements(1));
    group.bench_function("native/empty", |b| {
        b.iter(|| tickstock_normalizer::normalize_frame(std::hint::black_box("[]")))
    });
    group.bench_function("wasm/empty", |b| {
        b.iter(|| wasm.normalize_frame(std::hint::black_box("[]")).unwrap())
    });
    group.finish();
}

criterion_group!(benches, normalize);
criterion_main!(benches);
