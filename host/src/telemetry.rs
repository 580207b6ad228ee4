//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default
//! `info`), as text or, with `TICKSTOCK_LOG_FORMAT=json`, one JSON object
//! per line.
//!
//! Whatever `RUST_LOG` says, the WebSocket libraries log at most at
//! `debug`: at `trace` tungstenite dumps every frame it writes, and the
//! feed's `auth` frame carries the API key.

use tracing_subscriber::filter::Directive;
use tracing_subscriber::EnvFilter;

/// Targets capped below `trace`, because they log frame contents there.
const FRAME_DUMPERS: [&str; 2] = ["tungstenite=debug", "tokio_tungstenite=debug"];

/// The filter: `RUST_LOG` (or `info`), with [`FRAME_DUMPERS`] capped.
fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut filter = rust_log
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    for cap in FRAME_DUMPERS {
        if let Ok(directive) = cap.parse::<Directive>() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber. Safe to call more than once (later calls
/// are ignored), so tests can call it too.
pub fn init() {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let json = std::env::var("TICKSTOCK_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn trace_never_reaches_the_websocket_libraries() {
        let text = super::filter(Some("trace")).to_string();
        assert!(text.contains("tungstenite=debug"), "{text}");
        assert!(text.contains("tokio_tungstenite=debug"), "{text}");
    }
}
