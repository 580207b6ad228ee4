//! The normalizer world: one raw Massive frame in, ticks with their wire
//! payloads (and what was skipped) out.

use wasmtime::component::Instance;
use wasmtime::Store;

use super::bindings::normalize_packed::PackedNormalized;
use super::bindings::{normalize, normalize_packed, Normalized, NormalizedTick, PluginInfo, Tick};
use super::conformance::{check_normalizer, Strictness};
use super::ctx::PluginCtx;
use super::engine::LoadedComponent;
use super::error::CallError;
use super::instance::{Plugin, World};
use crate::contract::PluginKind;

/// The name of the optional packed export (contract 1.1.0).
pub const PACKED_EXPORT: &str = "tickstock:plugins/normalize-packed@1.1.0";

/// A normalizer's exports: `normalize`, and `normalize-packed` when the
/// component offers it (built against 1.1.0 or later); the host then calls
/// the packed one.
pub struct NormalizerExports {
    plain: normalize::Guest,
    packed: Option<normalize_packed::Guest>,
}

impl World for NormalizerExports {
    const KIND: PluginKind = PluginKind::Normalizer;

    fn load(
        component: &LoadedComponent,
        store: &mut Store<PluginCtx>,
        instance: &Instance,
    ) -> wasmtime::Result<Self> {
        let plain = normalize::GuestIndices::new(&component.pre)?.load(&mut *store, instance)?;
        let packed = component.optional_export(PACKED_EXPORT, |pre| {
            normalize_packed::GuestIndices::new(pre)?.load(store, instance)
        })?;
        Ok(NormalizerExports { plain, packed })
    }

    fn info(&self, store: &mut Store<PluginCtx>) -> wasmtime::Result<PluginInfo> {
        self.plain.call_info(store)
    }

    /// The golden frames; a new version may add payload fields.
    fn conformance(probe: &mut Plugin<Self>) -> Result<(), Vec<String>> {
        check_normalizer(probe, Strictness::Superset).map(|_| ())
    }

    fn warm_up(live: &mut Plugin<Self>) {
        // A failure here replaced the instance; the next frame shows it.
        let _ = live.warm_up();
    }
}

/// A normalizer instance, long-lived: create it once, call it per frame.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// use tickstock::plugins::{embedded, Limits, NormalizerPlugin, PluginEngine, PluginKind};
/// let engine = PluginEngine::new(Limits::default(), None)?;
/// let component = engine.load(PluginKind::Normalizer, embedded::NORMALIZER)?;
/// let mut normalizer = NormalizerPlugin::new(&engine, component.into())?;
/// let out = normalizer.normalize_frame(r#"[{"ev":"T","sym":"AAPL","p":1.5,"s":10,"t":1}]"#)?;
/// assert_eq!(out.ticks.len(), 1);
/// # Ok(()) }
/// ```
pub type NormalizerPlugin = Plugin<NormalizerExports>;

impl Plugin<NormalizerExports> {
    /// Normalizes one frame. After a trap, deadline or memory limit the
    /// instance has been replaced and the next call is served by a fresh
    /// one; a refused result (oversized, or a packed one with bad spans)
    /// leaves the instance as it is.
    pub fn normalize_frame(&mut self, frame: &str) -> Result<Normalized, CallError> {
        let out = if self.exports().packed.is_some() {
            let packed = self.call(|exports, store| match &exports.packed {
                Some(packed) => packed.call_normalize_frame_packed(store, frame),
                None => Err(wasmtime::Error::msg("the packed export went away")),
            })?;
            unpack(packed).map_err(|(kind, what)| match kind {
                Refused::TooMany => self.oversized(what),
                Refused::BadSpan => self.bad_result(what),
            })?
        } else {
            self.call(|exports, store| exports.plain.call_normalize_frame(store, frame))?
        };
        super::limits::check_normalized(&out).map_err(|what| self.oversized(what))?;
        Ok(out)
    }

    /// Whether this instance is called through `normalize-packed`.
    pub fn is_packed(&self) -> bool {
        self.exports().packed.is_some()
    }

    /// Runs one representative frame through a fresh instance, so its first
    /// real frame does not pay for first-touch memory and lazy set-up (the
    /// hot-swap path calls this before going live).
    pub fn warm_up(&mut self) -> Result<(), CallError> {
        const FRAME: &str = r#"[{"ev":"status","status":"success","message":"warm-up"},{"ev":"T","sym":"WARM","x":4,"i":"1","z":3,"p":100.25,"s":100,"c":[12],"t":1700000000000,"q":1},{"ev":"AM","sym":"WARM","v":10,"c":1.5,"e":1700000060000}]"#;
        self.normalize_frame(FRAME).map(|_| ())
    }
}

/// Why [`unpack`] refused a packed result.
#[derive(Debug, PartialEq)]
enum Refused {
    /// More ticks than the host takes from one frame.
    TooMany,
    /// A span outside the text, or cutting a character.
    BadSpan,
}

/// Turns a packed result into the plain one, refusing a span that is
/// outside the text or cuts a character.
fn unpack(packed: PackedNormalized) -> Result<Normalized, (Refused, String)> {
    let text = packed.text.as_str();
    let span = |i: usize, what: &str, start: u32, len: u32| {
        let start = start as usize;
        start
            .checked_add(len as usize)
            .and_then(|end| text.get(start..end))
            .ok_or_else(|| {
                (
                    Refused::BadSpan,
                    format!(
                        "tick {i}: {what} span {start}+{len} is outside the packed text ({} bytes) or cuts a character",
                        text.len()
                    ),
                )
            })
    };
    // The bound applies before anything is copied.
    if packed.ticks.len() > super::limits::MAX_TICKS_PER_FRAME {
        return Err((
            Refused::TooMany,
            format!(
                "{} ticks from one frame (at most {})",
                packed.ticks.len(),
                super::limits::MAX_TICKS_PER_FRAME
            ),
        ));
    }
    let ticks = packed
        .ticks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Ok(NormalizedTick {
                tick: Tick {
                    symbol: span(i, "symbol", t.symbol_start, t.symbol_len)?.to_string(),
                    price: t.price,
                    size: t.size,
                    timestamp_ms: t.timestamp_ms,
                    sequence: t.sequence,
                    kind: t.kind,
                    exchange: t.exchange,
                },
                payload: span(i, "payload", t.payload_start, t.payload_len)?.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Normalized {
        ticks,
        skipped: packed.skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::normalize_packed::PackedTick;
    use super::*;

    fn packed(text: &str, spans: [(u32, u32); 2]) -> PackedNormalized {
        PackedNormalized {
            text: text.to_string(),
            ticks: vec![PackedTick {
                symbol_start: spans[0].0,
                symbol_len: spans[0].1,
                payload_start: spans[1].0,
                payload_len: spans[1].1,
                price: 1.5,
                size: 2,
                timestamp_ms: 3,
                sequence: Some(4),
                kind: None,
                exchange: Some(5),
            }],
            skipped: Vec::new(),
        }
    }

    #[test]
    fn spans_are_cut_out_of_the_text() {
        let out = unpack(packed("AAPL{}", [(0, 4), (4, 2)])).unwrap();
        assert_eq!(out.ticks[0].tick.symbol, "AAPL");
        assert_eq!(out.ticks[0].payload, "{}");
        assert_eq!(out.ticks[0].tick.sequence, Some(4));
        assert_eq!(out.ticks[0].tick.exchange, Some(5));
    }

    #[test]
    fn a_span_outside_the_text_or_inside_a_character_is_refused() {
        let (kind, err) = unpack(packed("AAPL{}", [(0, 4), (4, 3)])).unwrap_err();
        assert_eq!(kind, Refused::BadSpan);
        assert!(err.contains("payload span 4+3"), "{err}");
        let (kind, err) = unpack(packed("AAPL{}", [(u32::MAX, 4), (0, 1)])).unwrap_err();
        assert_eq!(kind, Refused::BadSpan);
        assert!(err.contains("symbol span"), "{err}");
        let (kind, err) = unpack(packed("Ü{}", [(0, 1), (2, 2)])).unwrap_err();
        assert_eq!(kind, Refused::BadSpan);
        assert!(err.contains("cuts a character"), "{err}");
    }
}
