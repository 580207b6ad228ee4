//! Golden tests of the embedded normalizer component, called through the
//! host runtime (not as native Rust).

use tickstock::plugins::conformance::{check_normalizer, normalizer_cases, Strictness};
use tickstock::plugins::{EventKind, SkipReason};

use crate::helpers;

#[test]
fn golden_frames_give_exact_payloads() {
    let engine = helpers::engine();
    let mut plugin = helpers::normalizer(&engine);
    let checked = check_normalizer(&mut plugin, Strictness::Exact).unwrap_or_else(|problems| {
        panic!("golden mismatches:\n{}", problems.join("\n"));
    });
    assert_eq!(checked, normalizer_cases().len());
    assert!(checked >= 15, "only {checked} golden cases");
}

#[test]
fn structured_tick_agrees_with_payload() {
    let engine = helpers::engine();
    let mut plugin = helpers::normalizer(&engine);
    for case in normalizer_cases() {
        let out = plugin.normalize_frame(&case.frame).unwrap();
        for t in &out.ticks {
            let p: serde_json::Value = serde_json::from_str(&t.payload).unwrap();
            assert_eq!(p["type"], "market_tick", "{}", case.name);
            assert_eq!(p["symbol"], t.tick.symbol.as_str(), "{}", case.name);
            assert_eq!(p["price"].as_f64(), Some(t.tick.price), "{}", case.name);
            assert_eq!(
                p["volume"].as_u64(),
                Some(t.tick.size),
                "{}: volume is an integer",
                case.name
            );
            assert_eq!(
                p["timestamp"].as_i64(),
                Some(t.tick.timestamp_ms),
                "{}",
                case.name
            );
            assert_eq!(p["source"], "massive");
        }
    }
}

#[test]
fn kinds_sequence_and_exchange_are_reported() {
    let engine = helpers::engine();
    let mut plugin = helpers::normalizer(&engine);
    let frame = r#"[{"ev":"T","sym":"MSFT","x":4,"p":1.5,"s":1,"t":10,"q":99},
                   {"ev":"A","sym":"A1","c":2.0,"v":5,"e":20},
                   {"ev":"AM","sym":"A2","c":3.0,"v":6,"e":30}]"#;
    let out = plugin.normalize_frame(frame).unwrap();
    let kinds: Vec<_> = out.ticks.iter().map(|t| t.tick.kind).collect();
    assert_eq!(
        kinds,
        vec![
            Some(EventKind::Trade),
            Some(EventKind::SecondAggregate),
            Some(EventKind::MinuteAggregate)
        ]
    );
    assert_eq!(out.ticks[0].tick.sequence, Some(99));
    assert_eq!(out.ticks[0].tick.exchange, Some(4));
}

#[test]
fn a_long_frame_keeps_every_event_in_order() {
    let engine = helpers::engine();
    let mut plugin = helpers::normalizer(&engine);
    let events: Vec<String> = (0..5_000)
        .map(|i| {
            format!(
                r#"{{"ev":"T","sym":"S{}","p":{}.5,"s":{},"t":{},"q":{}}}"#,
                i % 37,
                i,
                i,
                1_700_000_000_000i64 + i,
                i
            )
        })
        .collect();
    let frame = format!("[{}]", events.join(","));
    let out = plugin.normalize_frame(&frame).unwrap();
    assert_eq!(out.ticks.len(), 5_000);
    assert!(out.skipped.is_empty());
    for (i, t) in out.ticks.iter().enumerate() {
        assert_eq!(t.tick.sequence, Some(i as u64));
    }
}

#[test]
fn malformed_input_is_reported_never_fatal() {
    let engine = helpers::engine();
    let mut plugin = helpers::normalizer(&engine);
    for junk in [
        "",
        "   ",
        "[",
        "]",
        "null",
        "{}",
        "[null]",
        "[[]]",
        "\u{0}",
        "[{\"ev\":1}]",
        "[{\"ev\":\"T\",\"p\":1e999}]",
    ] {
        let out = plugin
            .normalize_frame(junk)
            .unwrap_or_else(|e| panic!("{junk:?}: {e}"));
        assert!(out.ticks.is_empty(), "{junk:?} produced ticks");
        assert!(
            out.skipped
                .iter()
                .all(|s| s.reason == SkipReason::Malformed),
            "{junk:?}: {:?}",
            out.skipped.iter().map(|s| s.reason).collect::<Vec<_>>()
        );
        assert!(!out.skipped.is_empty(), "{junk:?} was silently dropped");
    }
}
