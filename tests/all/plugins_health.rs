//! Tests of the embedded health component through the host runtime, with
//! explicit times.

use tickstock::plugins::{
    conformance, EventKind, HealthReport, HealthStatus, HostState, MetricValue, Tick,
};

use crate::helpers;

const T0: i64 = 1_700_000_000_000;

fn tick(symbol: &str) -> Tick {
    Tick {
        symbol: symbol.into(),
        price: 10.0,
        size: 100,
        timestamp_ms: T0,
        sequence: None,
        kind: Some(EventKind::Trade),
        exchange: None,
    }
}

fn host() -> HostState {
    HostState {
        window_ms: 10_000,
        subscribed_symbols: 4,
        feed_connected: true,
        bus_connected: true,
        dropped_since_last_report: 0,
        issues: vec![],
    }
}

fn num(report: &HealthReport, name: &str) -> f64 {
    match report
        .metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| &m.value)
    {
        Some(MetricValue::Integer(i)) => *i as f64,
        Some(MetricValue::Float(f)) => *f,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn tps_and_active_symbols_cover_the_window() {
    let engine = helpers::engine();
    let mut h = helpers::health(&engine);
    // 20 ticks of OLD at T0, then 1 s batches of A/B/C for 10 s.
    h.observe(&vec![tick("OLD"); 20], T0).unwrap();
    for s in 1..=20 {
        let batch = [tick("A"), tick("B"), tick("C"), tick("A")];
        h.observe(&batch, T0 + s * 1_000).unwrap();
    }
    // Window (T0+10s, T0+20s]: 10 batches of 4 ticks, symbols A, B, C.
    let r = h.report(T0 + 20_000, &host()).unwrap();
    assert_eq!(num(&r, "active_symbols"), 3.0);
    assert_eq!(num(&r, "ticks_per_second"), 4.0);
    assert_eq!(num(&r, "total_ticks"), 100.0);
    assert_eq!(r.status, HealthStatus::Healthy);
    // The fields existing consumers read are there.
    assert_eq!(num(&r, "patterns_detected"), 0.0);
    assert_eq!(num(&r, "indicators_calculated"), 0.0);
}

#[test]
fn silence_while_subscribed_degrades() {
    let engine = helpers::engine();
    let mut h = helpers::health(&engine);
    h.observe(&[tick("A")], T0).unwrap();
    let r = h.report(T0 + 45_000, &host()).unwrap();
    assert_eq!(r.status, HealthStatus::Degraded);
    assert!(r.reason.contains("no ticks for 45s"), "{}", r.reason);
    assert_eq!(num(&r, "seconds_since_last_tick"), 45.0);
}

#[test]
fn exported_state_keeps_the_window_in_a_fresh_instance() {
    let engine = helpers::engine();
    let mut old = helpers::health(&engine);
    for s in 0..10 {
        old.observe(&[tick("A"), tick("B")], T0 + s * 1_000)
            .unwrap();
    }
    let before = old.report(T0 + 9_500, &host()).unwrap();
    let state = old.export_state().unwrap();
    let info = old.info().clone();

    let mut new = helpers::health(&engine);
    new.import_state(&state, &info).unwrap().unwrap();
    let after = new.report(T0 + 9_500, &host()).unwrap();
    assert_eq!(
        num(&after, "ticks_per_second"),
        num(&before, "ticks_per_second")
    );
    assert_eq!(num(&after, "active_symbols"), 2.0);
    assert_eq!(num(&after, "total_ticks"), 20.0);
    // And it keeps counting from there.
    new.observe(&[tick("C")], T0 + 9_600).unwrap();
    let later = new.report(T0 + 9_700, &host()).unwrap();
    assert_eq!(num(&later, "total_ticks"), 21.0);
    assert_eq!(num(&later, "active_symbols"), 3.0);
}

#[test]
fn unreadable_state_is_refused_and_the_plugin_starts_fresh() {
    let engine = helpers::engine();
    let mut h = helpers::health(&engine);
    h.observe(&[tick("A")], T0).unwrap();
    let info = h.info().clone();
    let refusal = h.import_state(b"not a state", &info).unwrap().unwrap_err();
    assert!(refusal.contains("starting fresh"), "{refusal}");
    let r = h.report(T0 + 1_000, &host()).unwrap();
    assert_eq!(num(&r, "total_ticks"), 0.0);
}

#[test]
fn embedded_health_passes_the_conformance_run() {
    let engine = helpers::engine();
    let mut h = helpers::health(&engine);
    conformance::check_health(&mut h).unwrap_or_else(|p| panic!("{}", p.join("\n")));
}
