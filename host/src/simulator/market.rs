//! The simulated market: every symbol has a plausible price that moves as a
//! random walk; a few names trade very often and a long tail rarely
//! (weights fall off with rank like Zipf's law); sizes are round and odd
//! lots; sequence numbers rise per symbol; timestamps are real Unix ms.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::feed::protocol::{Aggregate, Quote, Trade};

/// One symbol's state.
#[derive(Debug, Clone)]
struct SymbolState {
    symbol: String,
    price: f64,
    seq: u64,
    weight: f64,
    tape: u8,
    /// Per-second aggregate being built: (open, high, low, close, volume, vwap numerator).
    second: Option<Agg>,
    minute: Option<Agg>,
    day_volume: u64,
}

#[derive(Debug, Clone, Copy)]
struct Agg {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: u64,
    notional: f64,
    trades: u64,
}

impl Agg {
    fn new(price: f64, size: u64) -> Agg {
        Agg {
            open: price,
            high: price,
            low: price,
            close: price,
            volume: size,
            notional: price * size as f64,
            trades: 1,
        }
    }
    fn add(&mut self, price: f64, size: u64) {
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        self.volume += size;
        self.notional += price * size as f64;
        self.trades += 1;
    }
}

const EXCHANGES: [u8; 12] = [1, 2, 3, 4, 7, 8, 10, 11, 12, 15, 19, 21];

/// The market shared by all simulator connections.
#[derive(Debug)]
pub struct Market {
    symbols: Vec<SymbolState>,
    index: HashMap<String, usize>,
    rng: StdRng,
    trade_id: u64,
}

fn cents(p: f64) -> f64 {
    (p * 100.0).round() / 100.0
}

impl Market {
    /// A market over `universe` (in activity order: the first symbols trade
    /// most), reproducible from `seed`.
    pub fn new(universe: &[String], seed: u64) -> Market {
        let mut market = Market {
            symbols: Vec::with_capacity(universe.len()),
            index: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            trade_id: 1_000_000,
        };
        for symbol in universe {
            market.ensure(symbol);
        }
        market
    }

    /// Index of `symbol`, adding it (with a fresh price, tail activity) if new.
    pub fn ensure(&mut self, symbol: &str) -> usize {
        if let Some(&i) = self.index.get(symbol) {
            return i;
        }
        let rank = self.symbols.len();
        // Log-uniform start prices between $5 and $800.
        let price = cents((5.0f64.ln() + self.rng.random::<f64>() * (800.0f64 / 5.0).ln()).exp());
        let state = SymbolState {
            symbol: symbol.to_string(),
            price,
            seq: self.rng.random_range(1_000..1_000_000),
            weight: 1.0 / ((rank + 1) as f64).powf(1.1),
            tape: [1u8, 2, 3][self.rng.random_range(0..3)],
            second: None,
            minute: None,
            day_volume: 0,
        };
        self.symbols.push(state);
        self.index.insert(symbol.to_string(), rank);
        rank
    }

    /// The activity weight of a symbol (for picking who trades next).
    pub fn weight(&self, i: usize) -> f64 {
        self.symbols.get(i).map(|s| s.weight).unwrap_or(0.0)
    }

    /// All symbols, in index order.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.symbols.iter().map(|s| s.symbol.as_str())
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether the market has no symbols.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// A uniform random number in [0, 1), for pickers.
    pub fn unit(&mut self) -> f64 {
        self.rng.random()
    }

    /// The next trade of symbol `i` at `now_ms`.
    pub fn trade(&mut self, i: usize, now_ms: i64) -> Option<Trade> {
        let rng = &mut self.rng;
        let s = self.symbols.get_mut(i)?;
        // Random walk: ~3 bp per trade, never below a cent.
        let step: f64 =
            (rng.random::<f64>() + rng.random::<f64>() + rng.random::<f64>() - 1.5) * 0.0006;
        s.price = cents((s.price * (1.0 + step)).max(0.01));
        s.seq += rng.random_range(1..=40);
        let odd = rng.random_bool(0.35);
        let size = if odd {
            rng.random_range(1..100)
        } else {
            100 * (1 + (rng.random::<f64>().powi(3) * 20.0) as u64)
        };
        let conditions = if odd {
            Some(vec![37])
        } else if rng.random_bool(0.15) {
            Some(vec![12])
        } else {
            None
        };
        self.trade_id += 1;
        s.day_volume += size;
        match &mut s.second {
            Some(a) => a.add(s.price, size),
            None => s.second = Some(Agg::new(s.price, size)),
        }
        match &mut s.minute {
            Some(a) => a.add(s.price, size),
            None => s.minute = Some(Agg::new(s.price, size)),
        }
        Some(Trade {
            ev: "T",
            sym: s.symbol.clone(),
            x: EXCHANGES[rng.random_range(0..EXCHANGES.len())],
            i: self.trade_id.to_string(),
            z: s.tape,
            p: s.price,
            s: size,
            c: conditions,
            t: now_ms,
            q: s.seq,
        })
    }

    /// A quote around symbol `i`'s price.
    pub fn quote(&mut self, i: usize, now_ms: i64) -> Option<Quote> {
        let rng = &mut self.rng;
        let s = self.symbols.get_mut(i)?;
        s.seq += rng.random_range(1..=40);
        let spread = (s.price * 0.0004).max(0.01);
        Some(Quote {
            ev: "Q",
            sym: s.symbol.clone(),
            bx: EXCHANGES[rng.random_range(0..EXCHANGES.len())],
            bp: cents(s.price - spread / 2.0).max(0.01),
            bs: 100 * rng.random_range(1..20),
            ax: EXCHANGES[rng.random_range(0..EXCHANGES.len())],
            ap: cents(s.price + spread / 2.0),
            ask_size: 100 * rng.random_range(1..20),
            c: 0,
            t: now_ms,
            q: s.seq,
            z: s.tape,
        })
    }

    /// Closes the aggregate window of symbol `i` (`minute`: AM, else A)
    /// ending at `end_ms`; `None` if it did not trade in the window.
    pub fn close_window(
        &mut self,
        i: usize,
        minute: bool,
        start_ms: i64,
        end_ms: i64,
    ) -> Option<Aggregate> {
        let s = self.symbols.get_mut(i)?;
        let agg = if minute {
            s.minute.take()
        } else {
            s.second.take()
        }?;
        Some(Aggregate {
            ev: if minute { "AM" } else { "A" },
            sym: s.symbol.clone(),
            v: agg.volume,
            av: s.day_volume,
            op: agg.open,
            vw: cents(agg.notional / agg.volume.max(1) as f64),
            o: agg.open,
            c: agg.close,
            h: agg.high,
            l: agg.low,
            a: cents(agg.notional / agg.volume.max(1) as f64),
            z: agg.volume / agg.trades.max(1),
            s: start_ms,
            e: end_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn universe() -> Vec<String> {
        (0..100).map(|i| format!("S{i}")).collect()
    }

    #[test]
    fn sequences_rise_and_prices_stay_plausible() {
        let mut m = Market::new(&universe(), 7);
        let mut last_q = 0;
        let mut last_p = 0.0;
        for _ in 0..10_000 {
            let t = m.trade(3, 1).unwrap();
            assert!(t.q > last_q);
            assert!(t.p >= 0.01 && t.p < 10_000.0);
            assert!(t.s > 0);
            if last_p > 0.0 {
                assert!(
                    (t.p / last_p - 1.0).abs() < 0.01,
                    "jump {last_p} -> {}",
                    t.p
                );
            }
            last_q = t.q;
            last_p = t.p;
        }
    }

    #[test]
    fn same_seed_same_market() {
        let mut a = Market::new(&universe(), 42);
        let mut b = Market::new(&universe(), 42);
        for _ in 0..100 {
            assert_eq!(a.trade(1, 5).unwrap().p, b.trade(1, 5).unwrap().p);
        }
    }

    #[test]
    fn activity_falls_off_with_rank() {
        let m = Market::new(&universe(), 1);
        assert!(m.weight(0) > 10.0 * m.weight(50));
    }

    #[test]
    fn aggregates_summarize_trades() {
        let mut m = Market::new(&universe(), 1);
        let trades: Vec<Trade> = (0..10).map(|_| m.trade(0, 1).unwrap()).collect();
        let a = m.close_window(0, false, 0, 1000).unwrap();
        assert_eq!(a.v, trades.iter().map(|t| t.s).sum::<u64>());
        assert_eq!(a.c, trades[9].p);
        assert!(m.close_window(0, false, 1000, 2000).is_none());
    }
}
