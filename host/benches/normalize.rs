//! Normalize throughput: the normalizer component through the host runtime
//! (WASM) against the very same parsing code compiled natively, for frames
//! of 1, 10, 100 and 1000 trade events (the performance target names 1, 10
//! and 100), in one run. Criterion prints
//! elements/s, i.e. ticks/s.
//!
//! `cargo bench -p tickstock --bench normalize`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tickstock::plugins::{embedded, Limits, NormalizerPlugin, PluginEngine, PluginKind};

/// A frame of `n` realistic trade events over 50 symbols.
fn frame(n: usize) -> String {
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"ev":"T","sym":"SYM{}","x":{},"i":"{}","z":3,"p":{:.2},"s":{},"c":[12,37],"t":{},"q":{}}}"#,
                i % 50,
                i % 20,
                1_000_000 + i,
                100.0 + (i % 997) as f64 * 0.01,
                100 * (1 + i % 7),
                1_759_864_911_658u64 + i as u64,
                3_681_328 + i
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

fn normalize(c: &mut Criterion) {
    let engine = PluginEngine::new(Limits::default(), None).unwrap();
    let component = Arc::new(
        engine
            .load(PluginKind::Normalizer, embedded::NORMALIZER)
            .unwrap(),
    );
    let mut wasm = NormalizerPlugin::new(&engine, component).unwrap();

    let mut group = c.benchmark_group("normalize");
    for n in [1usize, 10, 100, 1000] {
        let frame = frame(n);
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
    group.finish();
}

criterion_group!(benches, normalize);
criterion_main!(benches);
