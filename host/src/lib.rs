//! TickStock: a real-time market-data host.
//!
//! One tick's path, module by module:
//!
//! 1. [`feed`] — the Massive WebSocket client reads a frame and queues it
//!    (bounded; drops are counted, the reader never waits). Without an API
//!    key, [`simulator`] serves a Massive-protocol market on loopback.
//! 2. [`pipeline`] — a thread owning the normalizer component turns each
//!    frame into ticks with their wire payloads ([`plugins`] is the
//!    WebAssembly runtime: engine, limits, cache, contract checks).
//! 3. [`roles::ingest`] publishes each payload on `PREFIX:market:ticks`
//!    through the [`bus`] (Redis or in-process).
//! 4. [`roles::process`] feeds the ticks to the health component and
//!    publishes the session and health events of [`events`].
//! 5. [`roles::dashboard`] keeps the latest state; [`web`] serves the
//!    status API, the page and its WebSocket, metrics and the admin API.
//!
//! Around them: [`config`] (flags, env, TOML), [`universe`] (symbol lists),
//! [`manager`] (hot swap, rollback, watched directory), [`cli`] / [`app`]
//! (command line and dispatch), [`author`] (plugin-author tools),
//! [`admin_client`] (`tickstock plugins`), [`telemetry`] (logging).

pub mod admin_client;
pub mod app;
pub mod author;
pub mod bus;
pub mod cli;
pub mod config;
pub mod events;
pub mod feed;
pub mod manager;
pub mod pipeline;
pub mod plugins;
pub mod roles;
pub mod simulator;
pub mod telemetry;
pub mod universe;
pub mod web;
