//! The fast path: a hand-written scanner for the frames Massive actually
//! sends, an array of flat event objects.
//!
//! serde_json's derive runs two to three times slower in WebAssembly than
//! natively (generic visitors, per-field dispatch, `Cow` bookkeeping), and
//! parsing is most of a normalizer's time. This scanner reads the same
//! [`RawEvent`]s in one forward pass over the bytes, borrowing every string
//! from the frame.
//!
//! It is an optimization only, never a second opinion: whenever the frame
//! holds anything whose meaning it does not reproduce exactly (a backslash
//! escape, a nested object, an exponent, a number whose `f64` could round
//! differently, a duplicate or mistyped field, any JSON error), it returns
//! `None` and [`super::normalize_into`] parses the frame with serde_json as
//! before. Where it does answer, the events equal serde_json's, bit for
//! bit: the unit tests below and the conformance frames compare the two.

use std::borrow::Cow;

use super::{CField, RawEvent};

/// Powers of ten that are exact in an `f64` (10^22 is the last).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The largest integer below which every integer is exact in an `f64`.
const F64_EXACT: u64 = 1 << 53;

/// Scans a whole frame, `[` event, ... `]`, into `events`. `None` means
/// "not handled here": `events` is then left in an unspecified state.
pub(super) fn frame<'a>(text: &'a str, events: &mut Vec<RawEvent<'a>>) -> Option<()> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    s.ws();
    s.eat(b'[')?;
    s.ws();
    if s.peek() == Some(b']') {
        s.pos += 1;
    } else {
        loop {
            s.ws();
            events.push(s.event()?);
            s.ws();
            match s.next()? {
                b',' => continue,
                b']' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    // Trailing text after the array is a serde_json error.
    (s.pos == s.bytes.len()).then_some(())
}

/// A number as JSON wrote it, before it is given a type.
#[derive(Clone, Copy)]
enum Number {
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer (never `-0`, which serde_json reads as a float).
    Negative(i64),
    /// A number with a fraction, already the `f64` serde_json computes.
    Float(f64),
}

impl Number {
    /// As serde_json gives an `f64` field: integers convert, exactly here.
    fn f64(self) -> Option<f64> {
        match self {
            Number::Unsigned(u) if u < F64_EXACT => Some(u as f64),
            Number::Negative(i) if i.unsigned_abs() < F64_EXACT => Some(i as f64),
            Number::Float(f) => Some(f),
            _ => None,
        }
    }

    /// As [`super::lenient_u64`] reads a size; fractions go to serde_json.
    fn size(self) -> Option<u64> {
        match self {
            Number::Unsigned(u) => Some(u),
            _ => None,
        }
    }

    /// An `i64` field (timestamps): an integer in range.
    fn i64(self) -> Option<i64> {
        match self {
            Number::Unsigned(u) => i64::try_from(u).ok(),
            Number::Negative(i) => Some(i),
            Number::Float(_) => None,
        }
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// JSON whitespace: space, tab, newline, carriage return.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// One event object. Each known field may appear once (serde's derive
    /// refuses duplicates); unknown fields are skipped.
    fn event(&mut self) -> Option<RawEvent<'a>> {
        self.eat(b'{')?;
        let mut e = RawEvent::default();
        let mut seen = 0u16;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(e);
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let bit = match key {
                "ev" => {
                    e.ev = self.opt_string()?;
                    1
                }
                "sym" => {
                    e.sym = self.opt_string()?;
                    1 << 1
                }
                "p" => {
                    e.p = self.opt_number(Number::f64)?;
                    1 << 2
                }
                "s" => {
                    e.s = self.opt_number(Number::size)?;
                    1 << 3
                }
                "t" => {
                    e.t = self.opt_number(Number::i64)?;
                    1 << 4
                }
                "q" => {
                    e.q = self.opt_number(Number::size)?;
                    1 << 5
                }
                "x" => {
                    e.x = self.opt_number(|n| u32::try_from(n.size()?).ok())?;
                    1 << 6
                }
                "c" => {
                    e.c = self.c_field()?;
                    1 << 7
                }
                "v" => {
                    e.v = self.opt_number(Number::size)?;
                    1 << 8
                }
                "e" => {
                    e.e = self.opt_number(Number::i64)?;
                    1 << 9
                }
                "bp" => {
                    e.bp = self.opt_number(Number::f64)?;
                    1 << 10
                }
                "ap" => {
                    e.ap = self.opt_number(Number::f64)?;
                    1 << 11
                }
                "status" => {
                    e.status = self.opt_string()?;
                    1 << 12
                }
                _ => {
                    self.skip_value()?;
                    0
                }
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(e),
                _ => return None,
            }
        }
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        loop {
            match self.next()? {
                b'"' => break,
                // An escape changes the text (serde_json's to decode), and a
                // raw control character is a serde_json error.
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
        // Both ends sit next to an ASCII quote, so on char boundaries.
        self.text.get(start..self.pos - 1)
    }

    fn null(&mut self) -> Option<()> {
        self.literal(b"null")
    }

    fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.peek() == Some(b'n') {
            self.null()?;
            return Some(None);
        }
        Some(Some(Cow::Borrowed(self.string()?)))
    }

    fn opt_number<T>(&mut self, typed: impl Fn(Number) -> Option<T>) -> Option<Option<T>> {
        if self.peek() == Some(b'n') {
            self.null()?;
            return Some(None);
        }
        Some(Some(typed(self.number()?)?))
    }

    /// `c`: an array (trade conditions) or a number (aggregate close).
    fn c_field(&mut self) -> Option<Option<CField>> {
        match self.peek()? {
            b'[' => {
                self.skip_value()?;
                Some(Some(CField::Conditions))
            }
            b'n' => {
                self.null()?;
                Some(None)
            }
            _ => Some(Some(CField::Close(self.number()?.f64()?))),
        }
    }

    /// A JSON number, or `None` for a form left to serde_json: an exponent,
    /// `-0`, more than 19 digits, more digits than an `f64` holds exactly,
    /// or a fraction beyond 10^-22. In what remains, serde_json's
    /// `significand / 10^k` is one correctly rounded division, and this is
    /// the same division.
    fn number(&mut self) -> Option<Number> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        // Accumulated with wrapping arithmetic and checked once by length:
        // 19 digits always fit a u64 (10^19 < 2^64). A `checked_mul` per
        // digit is a 128-bit multiply call in 32-bit WebAssembly, which was
        // a sixth of the guest's time.
        let mut significand: u64 = 0;
        let int_start = self.pos;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            significand = significand
                .wrapping_mul(10)
                .wrapping_add(u64::from(d - b'0'));
            self.pos += 1;
        }
        let int_digits = self.pos - int_start;
        // No digits, or a leading zero followed by more: not JSON.
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            return None;
        }
        let mut scale = 0usize;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                significand = significand
                    .wrapping_mul(10)
                    .wrapping_add(u64::from(d - b'0'));
                scale += 1;
                self.pos += 1;
            }
            if scale == 0 {
                return None;
            }
        }
        if int_digits + scale > 19 {
            return None;
        }
        if let Some(b'e' | b'E') = self.peek() {
            return None;
        }
        if scale == 0 {
            return match (negative, significand) {
                (false, u) => Some(Number::Unsigned(u)),
                (true, 0) => None,
                (true, u) => Some(Number::Negative(0i64.checked_sub_unsigned(u)?)),
            };
        }
        if significand >= F64_EXACT {
            return None;
        }
        let magnitude = significand as f64 / POW10.get(scale)?;
        Some(Number::Float(if negative { -magnitude } else { magnitude }))
    }

    /// Skips a value of an unknown field: a string, number, literal, or an
    /// array of those. Anything else goes to serde_json.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'[' => {
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    match self.peek()? {
                        b'[' | b'{' => return None,
                        _ => self.skip_value()?,
                    }
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.null(),
            _ => self.number().map(drop),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let rest = self.bytes.get(self.pos..self.pos + word.len())?;
        (rest == word).then(|| self.pos += word.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the scanner read, in a form that compares floats by bits.
    fn fingerprint(events: &[RawEvent<'_>]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let c = match e.c {
                    None => "-".to_string(),
                    Some(CField::Conditions) => "cond".to_string(),
                    Some(CField::Close(f)) => format!("close {:x}", f.to_bits()),
                };
                let bits = |f: Option<f64>| f.map(f64::to_bits);
                format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {c} {:?} {:?} {:?} {:?} {:?}",
                    e.ev,
                    e.sym,
                    bits(e.p),
                    e.s,
                    e.t,
                    e.q,
                    e.x,
                    e.v,
                    e.e,
                    bits(e.bp),
                    bits(e.ap),
                    e.status
                )
            })
            .collect()
    }

    /// The scanner's events for `frame`, or `None` where it defers.
    fn scanned(frame: &str) -> Option<Vec<String>> {
        let mut events = Vec::new();
        super::frame(frame, &mut events)?;
        Some(fingerprint(&events))
    }

    fn serde(frame: &str) -> Option<Vec<String>> {
        let events: Vec<RawEvent<'_>> = serde_json::from_str(frame).ok()?;
        Some(fingerprint(&events))
    }

    #[test]
    fn the_golden_frames_and_the_benchmark_frames_scan_as_serde_reads_them() {
        // scaffold: use let golden = include_str!("../../wit/conformance/normalizer-1.json");
        let golden = include_str!("../../../../wit/conformance/normalizer-1.json"); // scaffold: drop
        let cases: serde_json::Value = serde_json::from_str(golden).unwrap();
        let mut handled = 0;
        for case in cases["cases"].as_array().unwrap() {
            let frame = case["frame"].as_str().unwrap();
            if let Some(fast) = scanned(frame) {
                assert_eq!(Some(fast), serde(frame), "{frame}");
                handled += 1;
            }
        }
        // The ordinary cases (trades, quotes, aggregates, status) are
        // handled here, not deferred.
        assert!(handled >= 5, "only {handled} golden frames scanned");
        let trades = r#"[{"ev":"T","sym":"SYM1","x":1,"i":"1000001","z":3,"p":100.01,"s":200,"c":[12,37],"t":1759864911659,"q":3681329}]"#;
        assert_eq!(scanned(trades).unwrap(), serde(trades).unwrap());
    }

    #[test]
    fn prices_equal_serde_json_to_the_bit() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut handled = 0;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let digits = (seed % 17) as usize;
            let mantissa = seed >> 11;
            let text = mantissa.to_string();
            let split = digits.min(text.len());
            let (int, frac) = text.split_at(text.len() - split);
            let int = if int.is_empty() { "0" } else { int };
            let price = if frac.is_empty() {
                int.to_string()
            } else {
                format!("{int}.{frac}")
            };
            let frame = format!(r#"[{{"ev":"T","sym":"A","p":{price},"c":-{price},"t":1}}]"#);
            if let Some(fast) = scanned(&frame) {
                assert_eq!(Some(fast), serde(&frame), "{frame}");
                handled += 1;
            }
        }
        assert!(handled > 19_000, "only {handled} prices scanned");
    }

    #[test]
    fn anything_unusual_is_left_to_serde_json() {
        for frame in [
            r#"[{"ev":"T","sym":"A\"B","p":1,"t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":1e3,"t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":-0,"t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":1.5,"s":1.0,"t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":01,"t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":1.,"t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":"1","t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":1,"p":2,"t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1,"meta":{"a":1}}]"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1.5}]"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1,"x":4294967296}]"#,
            r#"[{"ev":"T","sym":"A","p":12345678901234567.5,"t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1,"v":18446744073709551615}]"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1,"v":99999999999999999999}]"#,
            r#"[{"ev":"T","sym":"A","p":0.00000000000000000001,"t":1}]"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1}] x"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1},]"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1,}]"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1}"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1},7]"#,
            r#"[{"ev":"T","sym":"A","p":1,"t":1,"i":[[1]]}]"#,
            "[{\"ev\":\"T\",\"sym\":\"A\tB\",\"p\":1,\"t\":1}]",
            r#"{"ev":"T","sym":"A","p":1,"t":1}"#,
            "",
        ] {
            assert_eq!(scanned(frame), None, "{frame}");
        }
    }

    #[test]
    fn nulls_literals_whitespace_and_empty_arrays_scan_as_serde_reads_them() {
        for frame in [
            "[]",
            " [ ] ",
            "[{}]",
            "\n[ { \"ev\" : \"T\" , \"sym\" : \"A\" , \"p\" : -1.25 , \"t\" : -5 } ]\r\n",
            r#"[{"ev":null,"sym":null,"p":null,"s":null,"t":null,"q":null,"x":null,"c":null,"v":null,"e":null,"bp":null,"ap":null,"status":null}]"#,
            r#"[{"ev":"A","sym":"Ü","otc":true,"f":false,"n":null,"i":[],"c":7,"v":9999999999999999999,"e":9223372036854775807}]"#,
            r#"[{"ev":"status","status":"success","message":"authenticated"}]"#,
        ] {
            assert_eq!(scanned(frame), serde(frame), "{frame}");
            assert!(scanned(frame).is_some(), "{frame}");
        }
    }
}
