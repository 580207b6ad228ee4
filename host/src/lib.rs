//! TickStock: a real-time market-data host.
//!
//! One tick's path, module by module:
//!
//! - [`plugins`] — the WebAssembly plugin runtime (normalizer and health
//!   components behind the WIT contract in `wit/`).
//! - [`cli`] and [`app`] — the command line and dispatch to a role.
//! - [`author`] — `tickstock plugin ...`, tools for plugin authors.
//! - [`telemetry`] — logging.

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
