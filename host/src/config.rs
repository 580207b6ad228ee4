//! One validated [`Config`] from the command line, the environment and an
//! optional TOML file (`--config`). Precedence: command line, then
//! environment (clap reads both), then the file, then built-in defaults.
//!
//! Secrets (the Massive API key, the admin token, a Redis password) are
//! wrapped in [`Secret`] (see [`crate::secret`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::cli::CommonArgs;
use crate::contract::DEFAULT_CHANNEL_PREFIX;
use crate::plugins::Limits;
use crate::universe::{Universe, DEFAULT_UNIVERSE};
use crate::web::ws::WsLimits;

/// The real-time stocks cluster.
pub const DEFAULT_MASSIVE_URL: &str = "wss://socket.massive.com/stocks";
/// Environment variable holding the Massive API key.
pub const API_KEY_ENV: &str = "MASSIVE_API_KEY";
/// Messages buffered for publishing before drops start.
pub const DEFAULT_PUBLISH_BUFFER: usize = 50_000;

use crate::secret::Secret;

/// A Massive channel (event type) to subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Trades.
    T,
    /// Quotes.
    Q,
    /// Per-second aggregates.
    A,
    /// Per-minute aggregates.
    AM,
}

impl Channel {
    /// The topic prefix, e.g. `T`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::T => "T",
            Channel::Q => "Q",
            Channel::A => "A",
            Channel::AM => "AM",
        }
    }

    /// Parses `T`, `Q`, `A` or `AM` (case-insensitive).
    pub fn parse(s: &str) -> anyhow::Result<Channel> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "T" => Channel::T,
            "Q" => Channel::Q,
            "A" => Channel::A,
            "AM" => Channel::AM,
            other => bail!("unknown channel {other:?}: expected T, Q, A or AM"),
        })
    }
}

/// Which symbols to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Symbols {
    /// The whole market (`T.*`).
    All,
    /// These symbols.
    List(Vec<String>),
}

/// What the feed subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Universe name reported in session events (`custom` for `--symbols`,
    /// `all` for `*`).
    pub universe: String,
    /// The symbols.
    pub symbols: Symbols,
    /// The channels.
    pub channels: Vec<Channel>,
}

impl Subscription {
    /// Every topic, e.g. `T.AAPL` or `T.*`.
    pub fn topics(&self) -> Vec<String> {
        let mut topics = Vec::new();
        for channel in &self.channels {
            match &self.symbols {
                Symbols::All => topics.push(format!("{}.*", channel.as_str())),
                Symbols::List(list) => {
                    topics.extend(list.iter().map(|s| format!("{}.{s}", channel.as_str())))
                }
            }
        }
        topics
    }

    /// Number of symbols subscribed (0 for the whole market, which has no
    /// fixed count).
    pub fn symbol_count(&self) -> usize {
        match &self.symbols {
            Symbols::All => 0,
            Symbols::List(list) => list.len(),
        }
    }
}

/// Where plugin components come from (embedded defaults when all are None).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSources {
    /// `--normalizer FILE`.
    pub normalizer: Option<PathBuf>,
    /// `--health FILE`.
    pub health: Option<PathBuf>,
    /// `--plugin-dir DIR`: `normalizer.wasm` / `health.wasm` inside it.
    pub dir: Option<PathBuf>,
}

/// Everything a role needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Redis URL; `None` means the in-process bus.
    pub redis_url: Option<Secret>,
    /// Massive WebSocket URL.
    pub massive_url: String,
    /// Massive API key; `None` means the built-in simulator (for `run` and `ingest`).
    pub api_key: Option<Secret>,
    /// Prefix of every channel name.
    pub channel_prefix: String,
    /// Time between health events.
    pub health_interval: Duration,
    /// Time a shutdown may take to drain and publish.
    pub shutdown_timeout: Duration,
    /// Dashboard / API listen address.
    pub listen: SocketAddr,
    /// What to subscribe to.
    pub subscription: Subscription,
    /// Plugin components.
    pub plugins: PluginSources,
    /// Compiled-component cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Per-call plugin limits.
    pub limits: Limits,
    /// Frames the feed may queue before dropping.
    pub queue_capacity: usize,
    /// How long the feed waits for room in a full queue before dropping.
    pub queue_wait: Duration,
    /// Messages buffered for the bus before dropping.
    pub publish_buffer: usize,
    /// Admin API token; `None` disables the admin API.
    pub admin_token: Option<Secret>,
    /// The fleet key (`TICKSTOCK_FLEET_KEY`, environment only); `None`:
    /// this instance ignores the fleet's control channel.
    pub fleet_key: Option<Secret>,
    /// Limits of the dashboard's WebSocket.
    pub ws: WsLimits,
    /// Largest frame accepted from the market feed, in bytes.
    pub max_frame_bytes: usize,
}

/// The TOML file: the same options as the command line, snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    redis_url: Option<String>,
    massive_url: Option<String>,
    channel_prefix: Option<String>,
    health_interval: Option<f64>,
    shutdown_timeout: Option<f64>,
    listen: Option<String>,
    symbols: Option<Vec<String>>,
    universe: Option<String>,
    channels: Option<Vec<String>>,
    queue_capacity: Option<usize>,
    queue_wait_ms: Option<u64>,
    publish_buffer: Option<usize>,
    ws_max_clients: Option<usize>,
    ws_origins: Option<Vec<String>>,
    max_frame_bytes: Option<usize>,
    normalizer: Option<PathBuf>,
    health: Option<PathBuf>,
    plugin_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    plugin_deadline_ms: Option<u64>,
    plugin_memory_mib: Option<usize>,
}

impl Config {
    /// Resolves the configuration from parsed arguments and the process
    /// environment.
    pub fn resolve(args: &CommonArgs) -> anyhow::Result<Config> {
        let api_key = std::env::var(API_KEY_ENV)
            .ok()
            .filter(|k| !k.trim().is_empty());
        let from_env = std::env::var("TICKSTOCK_ADMIN_TOKEN").ok();
        if args.admin_token.is_some() && args.admin_token != from_env {
            tracing::warn!(
                "the admin token was given as --admin-token, which other users can read in the \
                 process list; set TICKSTOCK_ADMIN_TOKEN in the environment instead"
            );
        }
        let mut config = Config::resolve_with(args, api_key)?;
        config.fleet_key = fleet_key(
            std::env::var(FLEET_KEY_ENV).ok(),
            config.admin_token.as_ref(),
        )?;
        Ok(config)
    }

    /// Like [`Config::resolve`], with the API key given explicitly.
    pub fn resolve_with(args: &CommonArgs, api_key: Option<String>) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Ok(Config {
            redis_url: args
                .redis_url
                .clone()
                .or(file.redis_url.clone())
                .map(Secret::new),
            massive_url: args
                .massive_url
                .clone()
                .or(file.massive_url.clone())
                .unwrap_or_else(|| DEFAULT_MASSIVE_URL.into()),
            api_key: api_key.map(Secret::new),
            channel_prefix: channel_prefix(args, &file)?,
            health_interval: health_interval(args, &file)?,
            shutdown_timeout: seconds(
                "--shutdown-timeout",
                args.shutdown_timeout.or(file.shutdown_timeout),
                5.0,
                0.1..=600.0,
            )?,
            listen: listen(args, &file)?,
            subscription: subscription_of(args, &file)?,
            plugins: PluginSources {
                normalizer: args.normalizer.clone().or(file.normalizer.clone()),
                health: args.health.clone().or(file.health.clone()),
                dir: args.plugin_dir.clone().or(file.plugin_dir.clone()),
            },
            cache_dir: args
                .cache_dir
                .clone()
                .or(file.cache_dir.clone())
                .or_else(default_cache_dir),
            limits: limits(args, &file)?,
            queue_capacity: queue_capacity(args, &file)?,
            queue_wait: queue_wait(args, &file)?,
            publish_buffer: publish_buffer(args, &file)?,
            admin_token: args
                .admin_token
                .clone()
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            fleet_key: None,
            ws: ws_limits(args, &file)?,
            max_frame_bytes: bounded(
                "--max-frame-bytes",
                args.max_frame_bytes.or(file.max_frame_bytes),
                4 << 20,
                // A frame larger than the frame queue could never be queued.
                1_024..=(crate::pipeline::FRAME_QUEUE_BYTES as usize),
            )?,
        })
    }
}

/// The environment variable that holds the fleet key.
pub const FLEET_KEY_ENV: &str = "TICKSTOCK_FLEET_KEY";

/// The fleet key from the environment: long enough, and not the admin
/// token (each is its own secret). Neither value is ever printed.
pub fn fleet_key(
    value: Option<String>,
    admin_token: Option<&Secret>,
) -> anyhow::Result<Option<Secret>> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() < crate::fleet::command::MIN_KEY_BYTES {
        bail!(
            "{FLEET_KEY_ENV} must be at least {} bytes long",
            crate::fleet::command::MIN_KEY_BYTES
        );
    }
    if admin_token.is_some_and(|t| t.expose() == value) {
        bail!("{FLEET_KEY_ENV} must not be the admin token: give the fleet its own key");
    }
    Ok(Some(Secret::new(value)))
}

fn channel_prefix(args: &CommonArgs, file: &FileConfig) -> anyhow::Result<String> {
    let prefix = args
        .channel_prefix
        .clone()
        .or(file.channel_prefix.clone())
        .unwrap_or_else(|| DEFAULT_CHANNEL_PREFIX.into());
    if prefix.is_empty() || prefix.contains(char::is_whitespace) {
        bail!("--channel-prefix must be non-empty and without spaces");
    }
    Ok(prefix)
}

fn health_interval(args: &CommonArgs, file: &FileConfig) -> anyhow::Result<Duration> {
    let interval = args.health_interval.or(file.health_interval);
    seconds("--health-interval", interval, 10.0, 0.05..=86_400.0)
}

/// A number of seconds within `range` (a clear error otherwise, never a
/// panic on infinities, NaN or values no `Duration` holds).
fn seconds(
    flag: &str,
    value: Option<f64>,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
) -> anyhow::Result<Duration> {
    let value = value.unwrap_or(default);
    if !range.contains(&value) {
        bail!(
            "{flag} must be between {} and {} seconds, got {value}",
            range.start(),
            range.end()
        );
    }
    Ok(Duration::from_secs_f64(value))
}

fn listen(args: &CommonArgs, file: &FileConfig) -> anyhow::Result<SocketAddr> {
    let listen = args
        .listen
        .clone()
        .or(file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    listen
        .parse()
        .with_context(|| format!("--listen {listen:?} is not an address like 127.0.0.1:8080"))
}

fn subscription_of(args: &CommonArgs, file: &FileConfig) -> anyhow::Result<Subscription> {
    let channels = match args.channels.clone().or(file.channels.clone()) {
        Some(list) => list
            .iter()
            .map(|c| Channel::parse(c))
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => vec![Channel::T],
    };
    if channels.is_empty() {
        bail!("--channels must name at least one channel");
    }
    let symbols = args.symbols.clone().or(file.symbols.clone());
    let universe = args.universe.clone().or(file.universe.clone());
    subscription(symbols, universe, channels)
}

fn limits(args: &CommonArgs, file: &FileConfig) -> anyhow::Result<Limits> {
    let deadline_ms = args
        .plugin_deadline_ms
        .or(file.plugin_deadline_ms)
        .unwrap_or(50);
    let memory_mib = args
        .plugin_memory_mib
        .or(file.plugin_memory_mib)
        .unwrap_or(64);
    if !(1..=60_000).contains(&deadline_ms) {
        bail!("--plugin-deadline-ms must be between 1 and 60000, got {deadline_ms}");
    }
    if !(1..=65_536).contains(&memory_mib) {
        bail!("--plugin-memory-mib must be between 1 and 65536, got {memory_mib}");
    }
    Ok(Limits {
        deadline: Duration::from_millis(deadline_ms),
        memory_bytes: memory_mib << 20,
    })
}

fn ws_limits(args: &CommonArgs, file: &FileConfig) -> anyhow::Result<WsLimits> {
    let max_clients = bounded(
        "--ws-max-clients",
        args.ws_max_clients.or(file.ws_max_clients),
        WsLimits::default().max_clients,
        1..=100_000,
    )?;
    let origins = args
        .ws_origins
        .clone()
        .or(file.ws_origins.clone())
        .unwrap_or_default();
    if let Some(bad) = origins.iter().find(|o| !o.contains("://")) {
        bail!("--ws-origins: {bad:?} is not an origin like https://ops.example.com");
    }
    Ok(WsLimits {
        max_clients,
        origins,
    })
}

/// A count within `range`, with a clear error otherwise.
fn bounded(
    flag: &str,
    value: Option<usize>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> anyhow::Result<usize> {
    let value = value.unwrap_or(default);
    if !range.contains(&value) {
        bail!(
            "{flag} must be between {} and {}, got {value}",
            range.start(),
            range.end()
        );
    }
    Ok(value)
}

fn queue_wait(args: &CommonArgs, file: &FileConfig) -> anyhow::Result<Duration> {
    let Some(ms) = args.queue_wait_ms.or(file.queue_wait_ms) else {
        return Ok(crate::feed::DEFAULT_QUEUE_WAIT);
    };
    // Longer, and a stalled pipeline would stop the reader long enough for
    // Massive to take it for a dead one.
    if ms > 1_000 {
        bail!("--queue-wait-ms must be between 0 and 1000, got {ms}");
    }
    Ok(Duration::from_millis(ms))
}

fn publish_buffer(args: &CommonArgs, file: &FileConfig) -> anyhow::Result<usize> {
    let buffer = args
        .publish_buffer
        .or(file.publish_buffer)
        .unwrap_or(DEFAULT_PUBLISH_BUFFER);
    if !(1..=10_000_000).contains(&buffer) {
        bail!("--publish-buffer must be between 1 and 10000000, got {buffer}");
    }
    Ok(buffer)
}

fn queue_capacity(args: &CommonArgs, file: &FileConfig) -> anyhow::Result<usize> {
    let capacity = args.queue_capacity.or(file.queue_capacity).unwrap_or(4096);
    if !(1..=1_000_000).contains(&capacity) {
        bail!("--queue-capacity must be between 1 and 1000000, got {capacity}");
    }
    Ok(capacity)
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn subscription(
    symbols: Option<Vec<String>>,
    universe: Option<String>,
    channels: Vec<Channel>,
) -> anyhow::Result<Subscription> {
    if let Some(list) = symbols {
        let mut clean: Vec<String> = Vec::new();
        for s in list.iter().map(|s| s.trim().to_ascii_uppercase()) {
            if s.is_empty() {
                continue;
            }
            if s != "*"
                && !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                bail!("--symbols: {s:?} is not a ticker");
            }
            if !clean.contains(&s) {
                clean.push(s);
            }
        }
        if clean.is_empty() {
            bail!("--symbols is empty");
        }
        if clean.iter().any(|s| s == "*") {
            return Ok(Subscription {
                universe: "all".into(),
                symbols: Symbols::All,
                channels,
            });
        }
        return Ok(Subscription {
            universe: "custom".into(),
            symbols: Symbols::List(clean),
            channels,
        });
    }
    let name = universe.unwrap_or_else(|| DEFAULT_UNIVERSE.into());
    let universe = Universe::named(&name)?;
    Ok(Subscription {
        universe: universe.name,
        symbols: Symbols::List(universe.symbols),
        channels,
    })
}

fn default_cache_dir() -> Option<PathBuf> {
    crate::plugins::cache::default_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_never_prints_with_the_config() {
        let cfg = Config::resolve_with(&CommonArgs::default(), Some("hunter2".into())).unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let cfg = Config::resolve_with(&CommonArgs::default(), None).unwrap();
        assert_eq!(cfg.channel_prefix, "tickstock");
        assert_eq!(cfg.health_interval, Duration::from_secs(10));
        assert_eq!(cfg.subscription.universe, "market_leaders:top_500");
        assert_eq!(cfg.subscription.symbol_count(), 500);
        assert_eq!(cfg.subscription.topics()[0], "T.AAPL");
    }

    #[test]
    fn symbols_and_wildcard() {
        let args = CommonArgs {
            symbols: Some(vec!["aapl".into(), " MSFT".into(), "AAPL".into()]),
            channels: Some(vec!["T".into(), "am".into()]),
            ..Default::default()
        };
        let cfg = Config::resolve_with(&args, None).unwrap();
        assert_eq!(
            cfg.subscription.topics(),
            vec!["T.AAPL", "T.MSFT", "AM.AAPL", "AM.MSFT"]
        );
        let args = CommonArgs {
            symbols: Some(vec!["*".into()]),
            ..Default::default()
        };
        assert_eq!(
            Config::resolve_with(&args, None)
                .unwrap()
                .subscription
                .topics(),
            vec!["T.*"]
        );
    }

    #[test]
    fn file_values_fill_gaps_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "channel_prefix = \"fromfile\"\nhealth_interval = 2.5\nlisten = \"127.0.0.1:9999\"\n",
        )
        .unwrap();
        let args = CommonArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:1234".into()),
            ..Default::default()
        };
        let cfg = Config::resolve_with(&args, None).unwrap();
        assert_eq!(cfg.channel_prefix, "fromfile");
        assert_eq!(cfg.health_interval, Duration::from_millis(2500));
        assert_eq!(cfg.listen.port(), 1234);
        std::fs::write(&path, "bogus_key = 1\n").unwrap();
        let err = format!("{:#}", Config::resolve_with(&args, None).unwrap_err());
        assert!(err.contains("bogus_key"), "{err}");
    }

    #[test]
    fn absurd_numbers_are_clear_errors_not_panics() {
        let cases: Vec<(CommonArgs, &str)> = vec![
            (
                CommonArgs {
                    health_interval: Some(1e20),
                    ..Default::default()
                },
                "--health-interval",
            ),
            (
                CommonArgs {
                    health_interval: Some(f64::NAN),
                    ..Default::default()
                },
                "--health-interval",
            ),
            (
                CommonArgs {
                    health_interval: Some(-1.0),
                    ..Default::default()
                },
                "--health-interval",
            ),
            (
                CommonArgs {
                    shutdown_timeout: Some(f64::INFINITY),
                    ..Default::default()
                },
                "--shutdown-timeout",
            ),
            (
                CommonArgs {
                    plugin_memory_mib: Some(usize::MAX),
                    ..Default::default()
                },
                "--plugin-memory-mib",
            ),
            (
                CommonArgs {
                    plugin_deadline_ms: Some(u64::MAX),
                    ..Default::default()
                },
                "--plugin-deadline-ms",
            ),
            (
                CommonArgs {
                    queue_capacity: Some(usize::MAX),
                    ..Default::default()
                },
                "--queue-capacity",
            ),
            (
                CommonArgs {
                    queue_wait_ms: Some(1_001),
                    ..Default::default()
                },
                "--queue-wait-ms",
            ),
            (
                CommonArgs {
                    publish_buffer: Some(0),
                    ..Default::default()
                },
                "--publish-buffer",
            ),
        ];
        for (args, flag) in cases {
            let err = format!("{:#}", Config::resolve_with(&args, None).unwrap_err());
            assert!(err.contains(flag), "{err}");
        }
    }
}
