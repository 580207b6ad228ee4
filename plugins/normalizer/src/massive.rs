//! Parsing of Massive stocks events into ticks and their wire payloads.
//!
//! A frame is parsed in one pass into [`RawEvent`]s, a flat struct holding
//! every field any stocks event uses: by the hand-written [`scan`]ner for
//! the frames Massive sends, by serde_json for anything else. Only when that
//! fails (some element is not an object, or a field has the wrong type) does
//! the parser fall back to a per-element parse, so that one bad event costs
//! only itself: every good event in the same frame still comes through.

mod scan;

use std::borrow::Cow;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::{EventKind, Normalized, NormalizedTick, SkipReason, Skipped, Tick};

/// The most input text quoted in a `skipped.detail`.
const DETAIL_MAX: usize = 200;

/// Every field of a stocks event that this version reads. Unknown fields are
/// ignored, so newer protocol fields never break parsing.
#[derive(Deserialize, Default)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    ev: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sym: Option<Cow<'a, str>>,
    /// Trade price.
    #[serde(default)]
    p: Option<f64>,
    /// Trade size.
    #[serde(default, deserialize_with = "lenient_u64")]
    s: Option<u64>,
    /// Trade (SIP) timestamp, or quote timestamp, Unix ms.
    #[serde(default)]
    t: Option<i64>,
    /// Sequence number.
    #[serde(default, deserialize_with = "lenient_u64")]
    q: Option<u64>,
    /// Exchange id.
    #[serde(default)]
    x: Option<u32>,
    /// Trade conditions (`[int]`) or aggregate close (`f64`).
    #[serde(default)]
    c: Option<CField>,
    /// Aggregate window volume.
    #[serde(default, deserialize_with = "lenient_u64")]
    v: Option<u64>,
    /// Aggregate window end, Unix ms.
    #[serde(default)]
    e: Option<i64>,
    /// Quote bid / ask prices.
    #[serde(default)]
    bp: Option<f64>,
    #[serde(default)]
    ap: Option<f64>,
    /// Status events: `status` and `message`.
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
}

/// The `c` field means "conditions" on trades and "close" on aggregates.
enum CField {
    Conditions,
    Close(f64),
}

impl<'de> Deserialize<'de> for CField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number (aggregate close) or an array (trade conditions)")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<CField, E> {
                Ok(CField::Close(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CField, E> {
                Ok(CField::Close(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CField, E> {
                Ok(CField::Close(v as f64))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CField, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(CField::Conditions)
            }
            fn visit_unit<E: de::Error>(self) -> Result<CField, E> {
                Ok(CField::Conditions)
            }
        }
        d.deserialize_any(V)
    }
}

/// Sizes are integers in the protocol, but some captures carry `100.0`;
/// accept any non-negative finite number and round it.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a non-negative number")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("negative size {v}")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() && v >= 0.0 {
                Ok(Some(v.round() as u64))
            } else {
                Err(E::custom(format!("invalid size {v}")))
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// The `market_tick` wire object (`docs/contract.md`), field order included:
/// existing consumers compare payloads byte for byte.
#[derive(Serialize)]
pub struct MarketTick<'a> {
    r#type: &'static str,
    symbol: &'a str,
    price: f64,
    volume: u64,
    timestamp: i64,
    source: &'static str,
    // scaffold: drop-begin
    /// Added by the test-only 1.1.0 build: the per-symbol sequence number.
    #[cfg(feature = "test-next")]
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
    // scaffold: drop-end
}

impl MarketTick<'_> {
    /// Appends the wire object to `out`: byte for byte what
    /// `serde_json::to_string` writes (the unit tests compare the two), but
    /// without serde's per-field calls, which cost more in WebAssembly than
    /// the copying does. Text that JSON must escape goes through serde_json.
    pub fn write_json(&self, out: &mut String) -> Result<(), String> {
        let plain = |s: &str| !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
        #[cfg(not(feature = "test-next"))] // scaffold: drop
        if self.price.is_finite() && plain(self.symbol) && plain(self.r#type) && plain(self.source)
        {
            out.push_str(r#"{"type":""#);
            out.push_str(self.r#type);
            out.push_str(r#"","symbol":""#);
            out.push_str(self.symbol);
            out.push_str(r#"","price":"#);
            out.push_str(zmij::Buffer::new().format_finite(self.price));
            out.push_str(r#","volume":"#);
            out.push_str(itoa::Buffer::new().format(self.volume));
            out.push_str(r#","timestamp":"#);
            out.push_str(itoa::Buffer::new().format(self.timestamp));
            out.push_str(r#","source":""#);
            out.push_str(self.source);
            out.push_str(r#""}"#);
            return Ok(());
        }
        let _ = plain; // scaffold: drop
        out.push_str(&serde_json::to_string(self).map_err(|err| err.to_string())?);
        Ok(())
    }
}

/// The longest symbol published. Massive's are far shorter (options
/// tickers, the longest, run to ~25 bytes).
pub const MAX_SYMBOL_BYTES: usize = 64;

/// Where the parser puts what it finds: [`Normalized`] (the `normalize`
/// export) or [`Packed`] (the `normalize-packed` export, whose strings all
/// go into one buffer).
pub trait Output {
    /// Room for `n` more ticks.
    fn reserve(&mut self, n: usize);
    /// An event that produced no tick.
    fn skip(&mut self, skipped: Skipped);
    /// A tick, its wire object not yet serialized: returns the
    /// serialization error, if any (nothing is kept then).
    fn tick(&mut self, tick: TickFields<'_>, wire: &MarketTick<'_>) -> Result<(), String>;
}

/// The fields of one tick, borrowed from the frame.
pub struct TickFields<'a> {
    /// The symbol.
    pub symbol: &'a str,
    /// The price.
    pub price: f64,
    /// The size (volume).
    pub size: u64,
    /// Unix ms.
    pub timestamp_ms: i64,
    /// The sequence number, if any.
    pub sequence: Option<u64>,
    /// The event kind.
    pub kind: EventKind,
    /// The exchange id, if any.
    pub exchange: Option<u32>,
}

impl Output for Normalized {
    fn reserve(&mut self, n: usize) {
        self.ticks.reserve(n);
    }

    fn skip(&mut self, skipped: Skipped) {
        self.skipped.push(skipped);
    }

    fn tick(&mut self, t: TickFields<'_>, wire: &MarketTick<'_>) -> Result<(), String> {
        let mut payload = String::with_capacity(128);
        wire.write_json(&mut payload)?;
        self.ticks.push(NormalizedTick {
            tick: Tick {
                symbol: t.symbol.to_string(),
                price: t.price,
                size: t.size,
                timestamp_ms: t.timestamp_ms,
                sequence: t.sequence,
                kind: Some(t.kind),
                exchange: t.exchange,
            },
            payload,
        });
        Ok(())
    }
}

/// Normalizes one frame (see the crate docs for the mapping).
pub fn normalize(frame: &str) -> Normalized {
    let mut out = Normalized {
        ticks: Vec::new(),
        skipped: Vec::new(),
    };
    normalize_into(frame, &mut out);
    out
}

/// Normalizes one frame into `out`.
pub fn normalize_into(frame: &str, out: &mut impl Output) {
    let trimmed = frame.trim_start();
    // Massive always sends arrays; a lone object is read as a one-event frame.
    if trimmed.starts_with('{') {
        match serde_json::from_str::<RawEvent>(frame) {
            Ok(event) => push_event(out, event),
            Err(err) => out.skip(malformed(None, &err.to_string())),
        }
        return;
    }
    // The common case first: the hand-written scanner, which defers to
    // serde_json on anything it does not read exactly as serde_json would.
    let mut events = Vec::new();
    if scan::frame(frame, &mut events).is_none() {
        match serde_json::from_str::<Vec<RawEvent>>(frame) {
            Ok(parsed) => events = parsed,
            Err(_) => return per_element(frame, out),
        }
    }
    out.reserve(events.len());
    for event in events {
        push_event(out, event);
    }
}

/// Slow path: the frame did not parse as a whole, so parse it as generic JSON
/// and classify each element on its own.
fn per_element(frame: &str, out: &mut impl Output) {
    let values: Vec<serde_json::Value> = match serde_json::from_str(frame) {
        Ok(values) => values,
        Err(err) => {
            out.skip(malformed(None, &frame_error(frame, &err)));
            return;
        }
    };
    for value in values {
        let ev = value.get("ev").and_then(|v| v.as_str()).map(str::to_string);
        match RawEvent::deserialize(&value) {
            Ok(event) => push_event(out, event),
            Err(err) => out.skip(malformed(ev, &err.to_string())),
        }
    }
}

fn frame_error(frame: &str, err: &serde_json::Error) -> String {
    if frame.trim().is_empty() {
        "empty frame".to_string()
    } else if serde_json::from_str::<IgnoredAny>(frame).is_ok() {
        "frame is JSON but not an array of events".to_string()
    } else {
        format!("invalid JSON: {err}")
    }
}

fn push_event(out: &mut impl Output, event: RawEvent<'_>) {
    let ev = match event.ev.as_deref() {
        Some(ev) => ev,
        None => {
            out.skip(malformed(None, "event has no \"ev\" field"));
            return;
        }
    };
    match ev {
        "T" => trade(out, &event),
        "A" => aggregate(out, &event, EventKind::SecondAggregate),
        "AM" => aggregate(out, &event, EventKind::MinuteAggregate),
        "Q" => quote(out, &event),
        "status" => out.skip(Skipped {
            reason: SkipReason::Status,
            ev: Some(ev.to_string()),
            detail: clip(event.status.as_deref().unwrap_or("")),
        }),
        other => out.skip(Skipped {
            reason: SkipReason::UnknownEvent,
            ev: Some(clip(other)),
            detail: format!("unknown event type {:?}", clip(other)),
        }),
    }
}

fn trade(out: &mut impl Output, e: &RawEvent<'_>) {
    let (Some(symbol), Some(price), Some(timestamp)) = (e.sym.as_deref(), e.p, e.t) else {
        out.skip(missing(
            e,
            "T",
            &[
                ("sym", e.sym.is_some()),
                ("p", e.p.is_some()),
                ("t", e.t.is_some()),
            ],
        ));
        return;
    };
    push_tick(
        out,
        symbol,
        price,
        e.s.unwrap_or(0),
        timestamp,
        e,
        EventKind::Trade,
    );
}

fn aggregate(out: &mut impl Output, e: &RawEvent<'_>, kind: EventKind) {
    let close = match e.c {
        Some(CField::Close(c)) => Some(c),
        _ => None,
    };
    let ev = if kind == EventKind::SecondAggregate {
        "A"
    } else {
        "AM"
    };
    let (Some(symbol), Some(price), Some(timestamp)) = (e.sym.as_deref(), close, e.e) else {
        out.skip(missing(
            e,
            ev,
            &[
                ("sym", e.sym.is_some()),
                ("c", close.is_some()),
                ("e", e.e.is_some()),
            ],
        ));
        return;
    };
    push_tick(out, symbol, price, e.v.unwrap_or(0), timestamp, e, kind);
}

fn quote(out: &mut impl Output, e: &RawEvent<'_>) {
    if e.sym.is_none() {
        out.skip(missing(e, "Q", &[("sym", false)]));
        return;
    }
    out.skip(Skipped {
        reason: SkipReason::NotPublished,
        ev: Some("Q".to_string()),
        detail: "quotes are parsed but not published by this version".to_string(),
    });
    let _ = (e.bp, e.ap);
}

fn push_tick(
    out: &mut impl Output,
    symbol: &str,
    price: f64,
    volume: u64,
    timestamp: i64,
    e: &RawEvent<'_>,
    kind: EventKind,
) {
    if symbol.len() > MAX_SYMBOL_BYTES {
        // Without this, one absurd symbol would make a payload the host
        // refuses, and with it every other tick of the frame.
        out.skip(malformed(
            e.ev.as_deref().map(str::to_string),
            &format!("symbol is longer than {MAX_SYMBOL_BYTES} bytes"),
        ));
        return;
    }
    if !price.is_finite() {
        out.skip(malformed(
            e.ev.as_deref().map(str::to_string),
            "price is not a finite number",
        ));
        return;
    }
    let wire = MarketTick {
        r#type: "market_tick",
        symbol,
        price,
        volume,
        timestamp,
        source: "massive",
        #[cfg(feature = "test-next")] // scaffold: drop
        sequence: e.q, // scaffold: drop
    };
    let fields = TickFields {
        symbol,
        price,
        size: volume,
        timestamp_ms: timestamp,
        sequence: e.q,
        kind,
        exchange: e.x,
    };
    if let Err(err) = out.tick(fields, &wire) {
        out.skip(malformed(e.ev.as_deref().map(str::to_string), &err));
    }
}

fn missing(e: &RawEvent<'_>, ev: &str, fields: &[(&str, bool)]) -> Skipped {
    let absent: Vec<&str> = fields
        .iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| *name)
        .collect();
    let _ = e;
    malformed(
        Some(ev.to_string()),
        &format!(
            "{ev} event missing required field(s): {}",
            absent.join(", ")
        ),
    )
}

fn malformed(ev: Option<String>, detail: &str) -> Skipped {
    Skipped {
        reason: SkipReason::Malformed,
        ev,
        detail: clip(detail),
    }
}

/// Truncates to at most [`DETAIL_MAX`] bytes on a character boundary.
fn clip(s: &str) -> String {
    if s.len() <= DETAIL_MAX {
        return s.to_string();
    }
    let mut end = DETAIL_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_symbol_skips_its_event_and_keeps_the_rest_of_the_frame() {
        let frame = format!(
            r#"[{{"ev":"T","sym":"{}","p":1.5,"s":1,"t":1}},{{"ev":"T","sym":"AAPL","p":1.5,"s":1,"t":1}}]"#,
            "A".repeat(MAX_SYMBOL_BYTES + 1)
        );
        let out = normalize(&frame);
        assert_eq!(out.ticks.len(), 1);
        assert_eq!(out.ticks[0].tick.symbol, "AAPL");
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.skipped[0].reason, SkipReason::Malformed);
        assert!(out.skipped[0].detail.contains("longer than 64 bytes"));
        let ok = "B".repeat(MAX_SYMBOL_BYTES);
        let frame = format!(r#"[{{"ev":"T","sym":"{ok}","p":1.5,"s":1,"t":1}}]"#);
        assert_eq!(normalize(&frame).ticks.len(), 1);
    }

    #[test]
    fn trade_payload_is_the_contract_object() {
        let out =
            normalize(r#"[{"ev":"T","sym":"AAPL","p":227.51,"s":100,"t":1759864911658,"q":7}]"#);
        assert_eq!(out.ticks.len(), 1);
        assert!(out.skipped.is_empty());
        assert_eq!(
            out.ticks[0].payload,
            r#"{"type":"market_tick","symbol":"AAPL","price":227.51,"volume":100,"timestamp":1759864911658,"source":"massive"}"#
        );
        assert_eq!(out.ticks[0].tick.sequence, Some(7));
    }

    #[test]
    fn write_json_writes_what_serde_json_writes() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let symbols = [
            "AAPL",
            "BRK.B",
            "A\"B",
            "C\\D",
            "E\u{1}F",
            "Ü€𝄞",
            "\u{7f}",
            "",
        ];
        for i in 0..20_000 {
            let bits = next();
            let price = match i % 4 {
                0 => f64::from_bits(bits),
                1 => (bits % 10_000_000) as f64 / 100.0,
                2 => -((bits % 1000) as f64) / 7.0,
                _ => [0.0, -0.0, 1e300, 5e-324, f64::NAN, f64::INFINITY][(bits % 6) as usize],
            };
            let wire = MarketTick {
                r#type: "market_tick",
                symbol: symbols[i % symbols.len()],
                price,
                volume: next() >> (bits % 64),
                timestamp: next() as i64 >> (bits % 64),
                source: "massive",
                #[cfg(feature = "test-next")] // scaffold: drop
                sequence: None, // scaffold: drop
            };
            let mut ours = String::from("kept ");
            wire.write_json(&mut ours).unwrap();
            assert_eq!(
                ours,
                format!("kept {}", serde_json::to_string(&wire).unwrap())
            );
        }
    }

    #[test]
    fn one_bad_event_does_not_spoil_the_frame() {
        let out = normalize(
            r#"[{"ev":"T","sym":"A","p":"x","t":1},{"ev":"T","sym":"B","p":1.5,"t":2},7]"#,
        );
        assert_eq!(out.ticks.len(), 1);
        assert_eq!(out.ticks[0].tick.symbol, "B");
        assert_eq!(out.skipped.len(), 2);
        assert!(out
            .skipped
            .iter()
            .all(|s| s.reason == SkipReason::Malformed));
    }

    #[test]
    fn details_are_clipped() {
        let long = "x".repeat(1000);
        let out = normalize(&format!(r#"[{{"ev":"{long}"}}]"#));
        assert_eq!(out.skipped[0].reason, SkipReason::UnknownEvent);
        assert!(out.skipped[0].detail.len() < 260);
    }
}
