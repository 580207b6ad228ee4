//! A test-only normalizer that misbehaves on request, for the host's runtime
//! safety tests. The frame text selects the behaviour:
//! - `loop`: spins forever (the host's epoch deadline must stop it);
//! - `alloc`: allocates without bound (the host's memory cap must stop it);
//! - `trap`: panics, which is a trap in WebAssembly;
//! - `log`: logs through the host and returns one tick;
//! - `sleep`: `std::thread::sleep` for an hour (a wait in host code);
//! - `log-flood`: logs 100,000 lines in one call;
//! - `stderr-flood`: prints 10,000 lines to stderr;
//! - `huge-output`: returns 200,000 ticks;
//! - `huge-payload`: returns one tick with a 2 MiB payload;
//! - `pollables`: creates host resources (WASI pollables) and keeps them,
//!   100,000 of them if the host allowed it;
//! - `probe`: returns one tick whose payload reports what the sandbox lets
//!   the guest see (environment, files, clock), as JSON;
//! - anything else: one tick whose payload is the frame, so a test can see
//!   the instance serving again after a failure.
//!
//! Built with the `packed` feature it also exports `normalize-packed`, which
//! the host then calls instead: the same answers, packed, except that
//! `span-outside`, `span-cuts-char` and `span-overflow` return a tick whose
//! spans the host must refuse.

#[allow(missing_docs, unsafe_code)]
mod bindings {
    #[cfg(not(feature = "packed"))]
    wit_bindgen::generate!({ world: "normalizer", path: "../../../wit" });
    #[cfg(feature = "packed")]
    wit_bindgen::generate!({ world: "normalizer-fast", path: "../../../wit" });
    use super::Component;
    export!(Component with_types_in crate::bindings);
}

use bindings::exports::tickstock::plugins::normalize::Guest;
use bindings::tickstock::plugins::host::log;
use bindings::tickstock::plugins::types::*;

struct Component;

/// Built with `loop-at-start`: a constructor that spins, run when the
/// component is instantiated (before any export is called).
#[cfg(feature = "loop-at-start")]
#[allow(unsafe_code)]
mod start {
    extern "C" fn spin_at_start() {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    #[used]
    #[unsafe(link_section = ".init_array")]
    static SPIN_AT_START: extern "C" fn() = spin_at_start;
}

impl Guest for Component {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave".into(),
            version: "0.0.1".into(),
        }
    }

    fn normalize_frame(frame: String) -> Normalized {
        match frame.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("asked to trap"),
            "log" => log(LogLevel::Warn, "hello from the guest"),
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(3600)),
            "stderr-flood" => {
                for i in 0..10_000 {
                    eprintln!("stderr line {i}");
                }
            }
            "log-flood" => {
                for i in 0..100_000 {
                    log(LogLevel::Info, &format!("line {i}"));
                }
            }
            "huge-output" => {
                let mut out = echo(String::from("{}"));
                let one = out.ticks[0].clone();
                out.ticks = vec![one; 200_000];
                return out;
            }
            "huge-payload" => return echo("x".repeat(2 << 20)),
            "pollables" => {
                let kept: Vec<_> = (0..100_000)
                    .map(|_| wasip2::clocks::monotonic_clock::subscribe_duration(0))
                    .collect();
                return echo(format!("kept {} pollables", kept.len()));
            }
            "probe" => {
                let clock = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(u64::MAX);
                let probe = format!(
                    r#"{{"env":{},"args":{},"root_readable":{},"clock_secs":{},"tcp_connect":{}}}"#,
                    std::env::vars().count(),
                    std::env::args().count(),
                    std::fs::read_dir("/").is_ok(),
                    clock,
                    std::net::TcpStream::connect("127.0.0.1:6379").is_ok()
                );
                return echo(probe);
            }
            _ => {}
        }
        echo(frame)
    }
}

fn echo(payload: String) -> Normalized {
    Normalized {
        ticks: vec![NormalizedTick {
            tick: Tick {
                symbol: "ECHO".into(),
                price: 1.0,
                size: 1,
                timestamp_ms: 0,
                sequence: None,
                kind: Some(EventKind::Trade),
                exchange: None,
            },
            payload,
        }],
        skipped: Vec::new(),
    }
}

#[cfg(feature = "packed")]
mod packed {
    use super::bindings::exports::tickstock::plugins::normalize_packed::{
        Guest, PackedNormalized, PackedTick,
    };
    use super::Component;

    impl Guest for Component {
        fn normalize_frame_packed(frame: String) -> PackedNormalized {
            // (text, symbol span, payload span) of a bad answer.
            let bad: Option<(&str, (u32, u32), (u32, u32))> = match frame.as_str() {
                "span-outside" => Some(("ECHO{}", (0, 4), (4, 1_000_000))),
                // `Ü` is two bytes: a one-byte symbol cuts it.
                "span-cuts-char" => Some(("Ü{}", (0, 1), (2, 2))),
                // start + len overflows a u32 (the host adds them as usize).
                "span-overflow" => Some(("ECHO{}", (u32::MAX, u32::MAX), (4, 2))),
                _ => None,
            };
            if let Some((text, symbol, payload)) = bad {
                return PackedNormalized {
                    text: text.to_string(),
                    ticks: vec![tick(symbol, payload, 1.0)],
                    skipped: Vec::new(),
                };
            }
            let plain = <Component as super::Guest>::normalize_frame(frame);
            let mut text = String::new();
            let mut ticks = Vec::with_capacity(plain.ticks.len());
            for t in &plain.ticks {
                let at = |text: &String| u32::try_from(text.len()).unwrap_or(u32::MAX);
                let symbol = (at(&text), t.tick.symbol.len() as u32);
                text.push_str(&t.tick.symbol);
                let payload = (at(&text), t.payload.len() as u32);
                text.push_str(&t.payload);
                ticks.push(tick(symbol, payload, t.tick.price));
            }
            PackedNormalized {
                text,
                ticks,
                skipped: plain.skipped,
            }
        }
    }

    fn tick(symbol: (u32, u32), payload: (u32, u32), price: f64) -> PackedTick {
        PackedTick {
            symbol_start: symbol.0,
            symbol_len: symbol.1,
            payload_start: payload.0,
            payload_len: payload.1,
            price,
            size: 1,
            timestamp_ms: 0,
            sequence: None,
            kind: None,
            exchange: None,
        }
    }
}
