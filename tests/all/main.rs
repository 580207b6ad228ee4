//! TickStock's end-to-end tests: one test binary (wasmtime links once), one
//! module per area, shared helpers in [`helpers`].

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod dashboard;
mod feed;
mod fleet;
mod helpers;
mod hotswap;
mod plugin_authors;
mod plugins_health;
mod plugins_normalizer;
mod plugins_runtime;
#[path = "../common/redis_server.rs"]
#[allow(dead_code)] // shared with the overload tests and the e2e bench
mod redis_server;
mod roles;
mod sandbox;
mod shadow;
