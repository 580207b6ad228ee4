//! The pause a hot swap puts on the normalization hot path: frames of 100
//! trades stream through the pipeline thread as fast as it takes them while
//! the normalizer is swapped 50 times (1.0.0 <-> 1.1.0). Reports the time
//! the thread spent switching, and the gaps between consecutive output
//! batches in the same run: the median gap overall, and the largest gap
//! that spans a swap.
//!
//! `cargo bench -p tickstock --bench swap`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tickstock::feed::Frame;
use tickstock::pipeline::{self, Output, PipelineStats};
use tickstock::plugins::{embedded, Limits, NormalizerPlugin, PluginEngine, PluginKind};

fn frame(n: usize, base: usize) -> String {
    let events: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"ev":"T","sym":"SYM{}","x":4,"i":"{}","z":3,"p":{}.25,"s":100,"t":1759864911658,"q":{}}}"#, i % 50, base + i, 100 + i % 7, base + i))
        .collect();
    format!("[{}]", events.join(","))
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = PluginEngine::new(Limits::default(), None).unwrap();
    let v1 = Arc::new(
        engine
            .load(PluginKind::Normalizer, embedded::NORMALIZER)
            .unwrap(),
    );
    let next = tickstock_test_artifacts::normalizer_next();
    let v2 = Arc::new(engine.load(PluginKind::Normalizer, &next).unwrap());

    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(1024);
    let stats = Arc::new(PipelineStats::default());
    let (pipeline, frames) = pipeline::spawn(
        NormalizerPlugin::new(&engine, v1.clone()).unwrap(),
        256,
        Default::default(),
        out_tx,
        stats.clone(),
        Default::default(),
    )
    .unwrap();

    // Output side: the time of every batch.
    let times = Arc::new(Mutex::new(Vec::with_capacity(1 << 20)));
    let t = times.clone();
    let reader = rt.spawn(async move {
        while let Some(out) = out_rx.recv().await {
            if let Output::Ticks(_) = out {
                t.lock().unwrap().push(Instant::now());
            }
        }
    });
    // Input side: frames as fast as the pipeline takes them.
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let feed_rt = rt.handle().clone();
    let feeder = std::thread::spawn(move || {
        let text = frame(100, 0);
        while !s.load(Ordering::Relaxed) {
            let f = Frame {
                text: text.clone().into(),
                received_ms: 0,
            };
            if feed_rt.block_on(frames.send(f)).is_err() {
                break;
            }
        }
    });

    std::thread::sleep(Duration::from_millis(500));
    let mut pauses = Vec::new();
    let mut swap_times = Vec::new();
    for i in 0..50 {
        let component = if i % 2 == 0 { v2.clone() } else { v1.clone() };
        let mut plugin = NormalizerPlugin::new(&engine, component).unwrap();
        plugin.warm_up().unwrap(); // as the plugin manager does
        let sent = Instant::now();
        let swapped = rt
            .block_on(pipeline.swapper().swap(plugin, Duration::from_secs(30)))
            .unwrap();
        swap_times.push(sent);
        pauses.push(swapped.pause.as_secs_f64() * 1e6);
        drop(swapped.old);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    drop(pipeline);
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    });

    let times = times.lock().unwrap().clone();
    let mut gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e6)
        .collect();
    let mut around: Vec<f64> = swap_times
        .iter()
        .filter_map(|s| {
            let i = times.partition_point(|t| t < s);
            (i > 0 && i + 1 < times.len()).then(|| {
                // The largest gap among the few batches around the swap.
                (i.saturating_sub(1)..(i + 3).min(times.len() - 1))
                    .map(|j| (times[j + 1] - times[j]).as_secs_f64() * 1e6)
                    .fold(0.0, f64::max)
            })
        })
        .collect();
    println!(
        "pipeline: {} frames of 100 trades, {} swaps",
        stats.frames.load(Ordering::Relaxed),
        pauses.len()
    );
    println!(
        "swap pause on the pipeline thread (µs): p50 {:.1}  p99 {:.1}  max {:.1}",
        pct(&mut pauses, 0.5),
        pct(&mut pauses, 0.99),
        pct(&mut pauses, 1.0)
    );
    println!("gap between output batches (µs): median {:.1} overall; around swaps: median {:.1}, max {:.1}", pct(&mut gaps, 0.5), pct(&mut around, 0.5), pct(&mut around, 1.0));
}
