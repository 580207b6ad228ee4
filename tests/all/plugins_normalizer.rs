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
    assert_eq!(checked, normalizer_cases().unwrap().len());
    assert!(checked >= 15, "only {checked} golden cases");
}

#[test]
fn structured_tick_agrees_with_payload() {
    let engine = helpers::engine();
    let mut plugin = helpers::normalizer(&engine);
    for case in normalizer_cases().unwrap() {
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

/// The plugin-author harness: `tickstock plugin check` and `plugin normalize`.
#[test]
fn the_author_tools_check_and_run_a_component() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.wasm");
    std::fs::write(&good, crate::helpers::guests::normalizer_next()).unwrap();
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, crate::helpers::guests::misbehave()).unwrap();

    let out = crate::helpers::tickstock_bin()
        .args(["plugin", "check", "normalizer"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["version"], "1.1.0");

    let out = crate::helpers::tickstock_bin()
        .args(["plugin", "check", "normalizer"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a component failing conformance passed the check"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["conformance_problems"]
        .as_array()
        .unwrap()
        .is_empty());

    let out = crate::helpers::tickstock_bin()
        .args(["plugin", "check", "health"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("this is a normalizer plugin"));

    let mut child = crate::helpers::tickstock_bin()
        .args(["plugin", "normalize", "--component"])
        .arg(&good)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"[{\"ev\":\"T\",\"sym\":\"AAPL\",\"p\":1.5,\"s\":10,\"t\":1,\"q\":9}]\nnot json\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["ticks"][0]["sequence"], 9);
    assert_eq!(lines[1]["skipped"][0]["reason"], "malformed");
}
