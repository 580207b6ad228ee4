//! The packed result (`normalize-packed`, contract 1.1.0): every symbol and
//! payload of a frame written into one buffer, each tick pointing at its
//! spans. The host then lifts one string per frame instead of two per tick,
//! and the guest allocates nothing per tick.

use crate::bindings::exports::tickstock::plugins::normalize_packed::{
    PackedNormalized, PackedTick,
};
use crate::massive::{self, MarketTick, Output, TickFields};
use crate::Skipped;

/// Normalizes one frame into the packed form: the same ticks, payloads and
/// skips as [`crate::normalize_frame`].
pub fn normalize_frame_packed(frame: &str) -> PackedNormalized {
    let mut out = Packed {
        text: String::with_capacity(frame.len() + frame.len() / 2),
        ticks: Vec::new(),
        skipped: Vec::new(),
    };
    massive::normalize_into(frame, &mut out);
    PackedNormalized {
        text: out.text,
        ticks: out.ticks,
        skipped: out.skipped,
    }
}

/// [`Output`] that writes into one buffer.
struct Packed {
    text: String,
    ticks: Vec<PackedTick>,
    skipped: Vec<Skipped>,
}

impl Output for Packed {
    fn reserve(&mut self, n: usize) {
        self.ticks.reserve(n);
    }

    fn skip(&mut self, skipped: Skipped) {
        self.skipped.push(skipped);
    }

    fn tick(&mut self, t: TickFields<'_>, wire: &MarketTick<'_>) -> Result<(), String> {
        let symbol_start = self.text.len();
        self.text.push_str(t.symbol);
        let payload_start = self.text.len();
        if let Err(err) = wire.write_json(&mut self.text) {
            self.text.truncate(symbol_start);
            return Err(err.to_string());
        }
        // The buffer is bounded by the frame (a few times its size), far
        // below 4 GiB: the host refuses frames over its size limit.
        let span = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.ticks.push(PackedTick {
            symbol_start: span(symbol_start),
            symbol_len: span(t.symbol.len()),
            payload_start: span(payload_start),
            payload_len: span(self.text.len() - payload_start),
            price: t.price,
            size: t.size,
            timestamp_ms: t.timestamp_ms,
            sequence: t.sequence,
            kind: Some(t.kind),
            exchange: t.exchange,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame of the conformance set gives the same result packed.
    #[test]
    fn packed_equals_plain_on_the_golden_frames() {
        let golden = include_str!("../../../wit/conformance/normalizer-1.json");
        let cases: serde_json::Value = serde_json::from_str(golden).unwrap();
        let frames: Vec<String> = cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["frame"].as_str().unwrap().to_string())
            .collect();
        assert!(frames.len() > 5);
        for frame in frames.iter().map(String::as_str).chain([
            r#"[{"ev":"T","sym":"A\"B\\u00e9","p":1e300,"s":1,"t":1},{"ev":"AM","sym":"Ü","c":2,"v":3,"e":4,"x":9}]"#,
            "not json",
        ]) {
            let plain = crate::normalize_frame(frame);
            let packed = normalize_frame_packed(frame);
            assert_eq!(format!("{:?}", plain.skipped), format!("{:?}", packed.skipped), "{frame}");
            assert_eq!(plain.ticks.len(), packed.ticks.len(), "{frame}");
            for (a, b) in plain.ticks.iter().zip(&packed.ticks) {
                let at = |start: u32, len: u32| &packed.text[start as usize..(start + len) as usize];
                assert_eq!(a.tick.symbol, at(b.symbol_start, b.symbol_len));
                assert_eq!(a.payload, at(b.payload_start, b.payload_len));
                assert_eq!(
                    (a.tick.price, a.tick.size, a.tick.timestamp_ms, a.tick.sequence),
                    (b.price, b.size, b.timestamp_ms, b.sequence)
                );
                assert_eq!(format!("{:?}", (a.tick.kind, a.tick.exchange)), format!("{:?}", (b.kind, b.exchange)));
            }
        }
    }
}
