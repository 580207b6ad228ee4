//! Massive frames for the benches: trade events as the feed sends them.

/// A frame of `n` realistic trade events over 50 symbols.
pub fn trades(n: usize) -> String {
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
