//! The command line: roles as subcommands, shared options, `--help` text.
//!
//! Every option that has an environment variable reads it through clap; a
//! `--config FILE` (TOML) fills in what neither the command line nor the
//! environment set (see [`crate::config`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plugins::PluginKind;
use crate::universe::DEFAULT_UNIVERSE;

/// TickStock: Massive market data -> WebAssembly plugins -> Redis and a live dashboard.
#[derive(Debug, Parser)]
#[command(name = "tickstock", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process arguments; no subcommand at all means `run`, so
    /// `cargo run --release` starts the whole pipeline.
    pub fn parse_args() -> Cli {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if args.len() <= 1 {
            Cli::parse_from(["tickstock", "run"])
        } else {
            Cli::parse_from(args)
        }
    }
}

/// The roles and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: feed, normalizer, health loop and
    /// dashboard. Without MASSIVE_API_KEY it uses the built-in simulator;
    /// without a Redis URL the roles talk through an in-process bus.
    Run(CommonArgs),
    /// Feed role: Massive WebSocket -> normalizer -> PREFIX:market:ticks.
    Ingest(CommonArgs),
    /// Process role: PREFIX:market:ticks -> health plugin -> session and
    /// health events every --health-interval seconds.
    Process(CommonArgs),
    /// Dashboard role: session and health events -> status API, live page.
    Dashboard(CommonArgs),
    /// A Massive-protocol WebSocket server with a simulated market.
    Simulate(SimulateArgs),
    /// Manage the plugins of a running host through its admin API.
    Plugins(PluginsArgs),
    /// Tools for plugin authors: check a component, run frames through it.
    Plugin(PluginArgs),
}

/// Options shared by the roles.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// TOML file with any of these options (command line and environment win).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Redis URL; without one, `run` uses an in-process bus.
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Massive WebSocket URL [default: wss://socket.massive.com/stocks].
    #[arg(long, env = "MASSIVE_URL", value_name = "URL")]
    pub massive_url: Option<String>,
    /// Prefix of every Redis channel [default: tickstock].
    #[arg(long, env = "TICKSTOCK_CHANNEL_PREFIX", value_name = "PREFIX")]
    pub channel_prefix: Option<String>,
    /// Seconds between health events [default: 10].
    #[arg(long, env = "TICKSTOCK_HEALTH_INTERVAL", value_name = "SECONDS")]
    pub health_interval: Option<f64>,
    /// Seconds a shutdown may take to drain the feed's queue and publish
    /// what it holds before `session_stopped` [default: 5].
    #[arg(long, env = "TICKSTOCK_SHUTDOWN_TIMEOUT", value_name = "SECONDS")]
    pub shutdown_timeout: Option<f64>,
    /// Address of the dashboard / API server [default: 127.0.0.1:8080].
    #[arg(long, env = "TICKSTOCK_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Symbols to subscribe to, comma-separated (e.g. AAPL,MSFT), or `*`.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        conflicts_with = "universe"
    )]
    pub symbols: Option<Vec<String>>,
    /// A named universe of symbols [default: market_leaders:top_500].
    #[arg(long, value_name = "NAME")]
    pub universe: Option<String>,
    /// Massive channels to subscribe to, comma-separated: T, Q, A, AM [default: T].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub channels: Option<Vec<String>>,
    /// Frames the feed may queue for normalization before it drops (and counts) [default: 4096].
    #[arg(long, value_name = "N")]
    pub queue_capacity: Option<usize>,
    /// How long the feed reader waits for room in a full normalization
    /// queue before it drops a frame (after a wait runs out it drops at
    /// once until the queue takes a frame); 0 drops at once [default: 20].
    #[arg(long, value_name = "MS")]
    pub queue_wait_ms: Option<u64>,
    /// Messages buffered for the bus while Redis is slow or down, before drops [default: 50000].
    #[arg(long, value_name = "N")]
    pub publish_buffer: Option<usize>,
    /// Token that enables the admin API (requests need `Authorization: Bearer TOKEN`).
    #[arg(
        long,
        env = "TICKSTOCK_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Most dashboard WebSocket clients at once; the next one is told why
    /// and closed [default: 1000].
    #[arg(long, value_name = "N")]
    pub ws_max_clients: Option<usize>,
    /// Origins allowed to open the dashboard WebSocket, besides the page's
    /// own (e.g. `https://ops.example.com`); clients that send no Origin
    /// (scripts) are always allowed.
    #[arg(long, value_delimiter = ',', value_name = "ORIGIN,...")]
    pub ws_origins: Option<Vec<String>>,
    /// Largest frame accepted from the market feed, in bytes; larger ones
    /// are refused and counted [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Normalizer component to use instead of the embedded one.
    #[arg(long, value_name = "FILE")]
    pub normalizer: Option<PathBuf>,
    /// Health component to use instead of the embedded one.
    #[arg(long, value_name = "FILE")]
    pub health: Option<PathBuf>,
    /// Directory holding normalizer.wasm and/or health.wasm.
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Directory for compiled plugin components [default: the user cache dir].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Per-call plugin deadline in milliseconds [default: 50].
    #[arg(long, value_name = "MS")]
    pub plugin_deadline_ms: Option<u64>,
    /// Per-instance plugin memory cap in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    pub plugin_memory_mib: Option<usize>,
}

/// Options of `simulate`.
#[derive(Debug, Args, Clone)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8765", value_name = "ADDR")]
    pub listen: String,
    /// Accept only this API key (any key is accepted without it).
    #[arg(
        long,
        env = "SIMULATOR_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
    /// Trades per second across all subscribed symbols (0 = as fast as the client reads: frames encoded once a second are replayed, so trades repeat within the second).
    #[arg(long, default_value_t = 200.0, value_name = "N")]
    pub rate: f64,
    /// Events per frame.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub batch: usize,
    /// Random seed for a reproducible market.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// The universe whose symbols trade (most active first).
    #[arg(long, default_value = DEFAULT_UNIVERSE, value_name = "NAME")]
    pub universe: String,
    /// Fault injection: drop the socket after every N data frames.
    #[arg(long, value_name = "N")]
    pub drop_every: Option<u64>,
    /// Fault injection: send junk frames after every N data frames.
    #[arg(long, value_name = "N")]
    pub malformed_every: Option<u64>,
    /// Fault injection: after every N data frames, also send one frame of
    /// `--huge-frame-mib` MiB.
    #[arg(long, value_name = "N", requires = "huge_frame_mib")]
    pub huge_frame_every: Option<u64>,
    /// Size of the frames `--huge-frame-every` sends.
    #[arg(long, value_name = "MIB", requires = "huge_frame_every")]
    pub huge_frame_mib: Option<usize>,
    /// Fault injection: delay the answer to `auth` by this many milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub auth_delay_ms: u64,
}

/// `plugins` subcommands (admin API client).
#[derive(Debug, Args, Clone)]
pub struct PluginsArgs {
    /// Admin API base URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        global = true,
        value_name = "URL"
    )]
    pub admin_url: String,
    /// What to do.
    #[command(subcommand)]
    pub action: PluginsAction,
}

/// Admin actions.
#[derive(Debug, Subcommand, Clone)]
pub enum PluginsAction {
    /// List active plugins and their history.
    List,
    /// Install a new version of a plugin.
    Install {
        /// `normalizer` or `health`.
        kind: PluginKind,
        /// The component file.
        file: PathBuf,
    },
    /// Roll a plugin back to its previous version.
    Rollback {
        /// `normalizer` or `health`.
        kind: PluginKind,
    },
    /// Run a candidate beside the live version on a copy of the same input and report how their outputs differ (with FILE: start one; without: show the current report; with --stop: end it).
    Shadow {
        /// `normalizer` or `health`.
        kind: PluginKind,
        /// The candidate component.
        file: Option<PathBuf>,
        /// Run for this long (e.g. `30s`, `10m`), print the report as it goes, and end with the final one [default: until stopped].
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// End the running shadow and print its final report.
        #[arg(long, conflicts_with_all = ["file", "duration"])]
        stop: bool,
    },
    /// Install the running shadow's candidate through the normal swap.
    Promote {
        /// `normalizer` or `health`.
        kind: PluginKind,
    },
}

/// `tickstock plugin test`.
#[derive(Debug, Args, Clone)]
pub struct PluginTestArgs {
    /// The component file.
    pub file: PathBuf,
    /// `normalizer` or `health` [default: found from its exports].
    #[arg(long)]
    pub kind: Option<PluginKind>,
    /// Extra frames, one JSON frame per line (for a health plugin they are normalized into tick batches).
    #[arg(long, value_name = "FILE")]
    pub frames: Option<PathBuf>,
    /// Golden cases to use instead of the contract's (the format of wit/conformance/normalizer-1.json).
    #[arg(long, value_name = "FILE")]
    pub golden: Option<PathBuf>,
    /// How many mutated frames (or hostile tick batches) to try.
    #[arg(long, default_value_t = 300)]
    pub fuzz: usize,
    /// Seed of the mutations (to reproduce a failure).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The language of a new plugin project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PluginLang {
    /// A cargo project built for `wasm32-wasip2`.
    Rust,
    /// A componentize-py project (health plugins only).
    Python,
}

/// `plugin` subcommands (local, for plugin authors).
#[derive(Debug, Args, Clone)]
pub struct PluginArgs {
    /// Directory for compiled components, so that testing a large component
    /// again is fast [default: the user cache dir].
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: PluginAction,
}

/// Plugin-author tools.
#[derive(Debug, Subcommand, Clone)]
pub enum PluginAction {
    /// Write a new plugin project into DIR (named after it), ready to build outside this repository.
    New {
        /// `normalizer` or `health`.
        #[arg(long)]
        kind: PluginKind,
        /// `rust`, or `python` (health plugins only).
        #[arg(long, value_enum, default_value = "rust")]
        lang: PluginLang,
        /// The project directory; its last component is the plugin's name.
        dir: PathBuf,
    },
    /// Write the WIT contract this host embeds into DIR.
    Wit {
        /// Where to write `tickstock.wit`, its README and the golden frames.
        dir: PathBuf,
    },
    /// The author's harness: everything the host checks, plus golden frames with diffs, fuzzing, determinism, state round trip, latency, memory and a diff against the default plugin; exit 0 only when all pass.
    Test(PluginTestArgs),
    /// Load a component exactly as the host would, run the conformance check a hot swap runs, and print what it is or why it would be refused (non-zero exit).
    Check {
        /// `normalizer` or `health`.
        kind: PluginKind,
        /// The component file.
        file: PathBuf,
    },
    /// Run a normalizer over frames (one JSON frame per line, from FILE or stdin) and print its output as JSON lines.
    Normalize {
        /// The normalizer component file (default: the embedded one).
        #[arg(long, value_name = "FILE")]
        component: Option<PathBuf>,
        /// Frames file, one frame per line (default: stdin).
        frames: Option<PathBuf>,
    },
}
