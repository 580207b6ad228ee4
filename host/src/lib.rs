//! TickStock: a real-time market-data host.
//!
//! One tick's path, module by module:
//!
//! 1. [`feed`] — the Massive WebSocket client reads a frame and queues it
//!    (bounded; a full queue is waited on briefly, then frames are
//!    dropped and counted). Without an API
//!    key, [`simulator`] serves a Massive-protocol market on loopback.
//! 2. [`pipeline`] — the normalizer plugin on its own thread turns each
//!    frame into ticks with their wire payloads. [`plugins`] is the
//!    WebAssembly runtime (engine, limits, cache, contract checks) and its
//!    [`plugins::runner`] the one thread discipline both plugins run under.
//! 3. [`roles::ingest`] publishes each payload on `PREFIX:market:ticks`
//!    through the [`bus`] (Redis or in-process).
//! 4. [`health_loop`] feeds the ticks to the health plugin and publishes one
//!    health event per interval; [`roles::process`] wraps it in a session.
//!    Every event's shape is in [`events`]; the contract's constants in
//!    [`contract`].
//! 5. [`web`] keeps the latest state ([`web::state`]) and serves the status
//!    API, the page and its WebSocket, metrics and the admin API.
//!
//! Around them: [`config`] (flags, env, TOML), [`secret`] (values never
//! printed), [`backoff`] (reconnect delays), [`universe`] (symbol lists),
//! [`manager`] (hot swap, rollback, watched directory), [`fleet`] (one
//! install, rollback or shadow across every instance, signed, through
//! Redis), [`cli`] / [`app`]
//! (command line and dispatch), [`author`] (plugin-author tools),
//! [`admin_client`] (`tickstock plugins`), [`telemetry`] (logging).
//!
//! Modules form layers and only ever use a lower one; `layers.rs` lists
//! them (from `contract`, `secret` and `backoff` at the bottom, through
//! `events`/`bus`, `plugins`, `feed`, then `pipeline`, `health_loop`,
//! `manager`, `fleet`, up to `web`, `roles` and `app`) and its test checks every
//! `crate::` path.

pub mod admin_client;
pub mod app;
pub mod author;
pub mod backoff;
pub mod bus;
pub mod cli;
pub mod config;
pub mod contract;
pub mod events;
pub mod feed;
pub mod fleet;
pub mod health_loop;
#[cfg(test)]
mod layers;
pub mod manager;
pub mod pipeline;
pub mod plugins;
pub mod roles;
pub mod secret;
pub mod shadow;
pub mod simulator;
pub mod telemetry;
pub mod universe;
pub mod web;
