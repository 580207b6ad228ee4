//! The dashboard's "most active symbols": ticks per symbol over the last
//! 30-60 s, ranked, from the ticks channel.
//!
//! Symbols come from the bus, so anyone who can publish there decides
//! them: the board holds at most [`MAX_SYMBOLS`] symbols of at most
//! [`MAX_SYMBOL_BYTES`] each, and counts the ticks of symbols it had no
//! room for (or that are too long) instead of growing.

use std::collections::HashMap;

use serde_json::{json, Value};

/// Symbols listed as most active.
pub const TOP_SYMBOLS: usize = 12;
/// Symbols tracked at once (a full US equities universe is ~12,000).
pub const MAX_SYMBOLS: usize = 20_000;
/// Longest symbol tracked (tickers are a few bytes; an OCC option ticker
/// with its `O:` prefix is 21).
pub const MAX_SYMBOL_BYTES: usize = 32;

#[derive(Default)]
struct Activity {
    current: u64,
    previous: u64,
    price: f64,
    timestamp: i64,
}

/// Ticks per symbol in two windows (the current one and the one before),
/// so the ranking covers the last one to two window lengths.
#[derive(Default)]
pub struct SymbolBoard {
    symbols: HashMap<String, Activity>,
    /// Ticks of new symbols not tracked because the board was full.
    pub untracked: u64,
}

impl SymbolBoard {
    /// Counts one tick payload of `PREFIX:market:ticks`; anything that is
    /// not a tick (no `symbol` or `price`) is ignored.
    pub fn record(&mut self, payload: &str) {
        #[derive(serde::Deserialize)]
        struct Tick {
            symbol: String,
            price: f64,
            #[serde(default)]
            timestamp: i64,
        }
        let Ok(tick) = serde_json::from_str::<Tick>(payload) else {
            return;
        };
        let no_room = self.symbols.len() >= MAX_SYMBOLS && !self.symbols.contains_key(&tick.symbol);
        if no_room || tick.symbol.len() > MAX_SYMBOL_BYTES {
            self.untracked += 1;
            return;
        }
        let a = self.symbols.entry(tick.symbol).or_default();
        a.current += 1;
        a.price = tick.price;
        a.timestamp = tick.timestamp;
    }

    /// Starts a new window: the current one becomes the previous one, and
    /// symbols without a tick in it are forgotten.
    pub fn rotate(&mut self) {
        self.symbols.retain(|_, a| a.current > 0);
        for a in self.symbols.values_mut() {
            a.previous = std::mem::take(&mut a.current);
        }
    }

    /// The [`TOP_SYMBOLS`] most active symbols, most ticks first (ties by
    /// name, so the list does not shuffle between updates), as the
    /// dashboard's `top_symbols` message.
    pub fn top(&self) -> Value {
        let mut ranked: Vec<(&String, &Activity)> = self.symbols.iter().collect();
        let ticks = |a: &Activity| a.current + a.previous;
        ranked.sort_by(|a, b| ticks(b.1).cmp(&ticks(a.1)).then(a.0.cmp(b.0)));
        ranked
            .into_iter()
            .take(TOP_SYMBOLS)
            .map(|(symbol, a)| {
                json!({"symbol": symbol, "price": a.price, "ticks": ticks(a), "timestamp": a.timestamp})
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(symbol: &str, price: f64) -> String {
        json!({"symbol": symbol, "price": price, "timestamp": 7}).to_string()
    }

    fn ranking(board: &SymbolBoard) -> Vec<(String, u64)> {
        board
            .top()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["symbol"].as_str().unwrap().to_string(),
                    e["ticks"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn most_ticks_first_ties_by_name_at_most_twelve() {
        let mut board = SymbolBoard::default();
        for (i, symbol) in ["C", "A", "B", "D"].iter().enumerate() {
            for _ in 0..=i {
                board.record(&tick(symbol, 1.0));
            }
        }
        board.record(&tick("E", 1.0)); // ties with C (1 tick) and comes after it
        assert_eq!(
            ranking(&board),
            [("D", 4), ("B", 3), ("A", 2), ("C", 1), ("E", 1)].map(|(s, n)| (s.to_string(), n))
        );
        for i in 0..20 {
            board.record(&tick(&format!("X{i:02}"), 1.0));
        }
        assert_eq!(board.top().as_array().unwrap().len(), TOP_SYMBOLS);
    }

    #[test]
    fn ties_are_listed_by_name_so_the_list_does_not_shuffle() {
        let mut board = SymbolBoard::default();
        // Inserted in reverse: a map's order would not be by name.
        let names: Vec<String> = (0..TOP_SYMBOLS).rev().map(|i| format!("T{i:02}")).collect();
        for name in &names {
            board.record(&tick(name, 1.0));
        }
        let mut expected = names.clone();
        expected.sort();
        let listed: Vec<String> = ranking(&board).into_iter().map(|(s, _)| s).collect();
        assert_eq!(listed, expected);
    }

    #[test]
    fn the_entry_carries_the_last_price_and_timestamp() {
        let mut board = SymbolBoard::default();
        board.record(&tick("A", 1.0));
        board.record(&tick("A", 2.5));
        let top = board.top();
        assert_eq!(top[0]["price"], 2.5);
        assert_eq!(top[0]["timestamp"], 7);
    }

    #[test]
    fn the_ranking_covers_two_windows_and_forgets_quiet_symbols() {
        let mut board = SymbolBoard::default();
        for _ in 0..5 {
            board.record(&tick("OLD", 1.0));
        }
        board.rotate();
        for _ in 0..3 {
            board.record(&tick("NEW", 1.0));
        }
        // OLD's five ticks from the previous window still count.
        assert_eq!(
            ranking(&board),
            [("OLD".to_string(), 5), ("NEW".to_string(), 3)]
        );
        board.rotate();
        // OLD had nothing in the last window: gone; NEW's 3 are now "previous".
        assert_eq!(ranking(&board), [("NEW".to_string(), 3)]);
    }

    #[test]
    fn payloads_that_are_not_ticks_are_ignored() {
        let mut board = SymbolBoard::default();
        board.record("not json");
        board.record(r#"{"symbol":"A"}"#);
        board.record(r#"{"price":1.0}"#);
        assert!(ranking(&board).is_empty());
    }

    #[test]
    fn symbols_beyond_the_bound_are_counted_not_stored() {
        let mut board = SymbolBoard::default();
        for i in 0..MAX_SYMBOLS + 10 {
            board.record(&tick(&format!("S{i}"), 1.0));
        }
        assert_eq!(board.symbols.len(), MAX_SYMBOLS);
        assert_eq!(board.untracked, 10);
        // A tracked symbol still counts.
        board.record(&tick("S0", 1.0));
        assert_eq!(board.symbols["S0"].current, 2);
    }

    #[test]
    fn overlong_symbols_are_counted_not_stored() {
        let mut board = SymbolBoard::default();
        board.record(&tick(&"X".repeat(MAX_SYMBOL_BYTES + 1), 1.0));
        board.record(&tick(&"Y".repeat(MAX_SYMBOL_BYTES), 1.0));
        assert_eq!(board.untracked, 1);
        assert_eq!(ranking(&board).len(), 1);
    }
}
