//! A Massive-protocol WebSocket server with a simulated market, so the
//! whole pipeline runs for real without an API key: `tickstock simulate`,
//! and the embedded default of `tickstock run`.

mod market;
mod server;

pub use market::Market;
pub use server::{Faults, SentTrade, Simulator, SimulatorConfig, SimulatorStats, PACE_EVERY};
