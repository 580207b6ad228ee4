//! `/metrics` in Prometheus text format.
//!
//! The host counts in its own atomics (feed, pipeline, bus, plugins, web);
//! at scrape time their values are copied into a per-host
//! `metrics-exporter-prometheus` recorder, which renders the text. Plugin
//! call latency is rendered as a native Prometheus histogram from the
//! plugins' own buckets.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use super::AppState;
use crate::plugins::stats::BUCKETS_US;
use crate::plugins::CallStats;

/// A per-host recorder (not the global one, so several hosts in one process
/// each report their own numbers).
pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            recorder: PrometheusBuilder::new().build_recorder(),
        }
    }
}

impl Metrics {
    /// Renders every metric of `state`.
    pub fn render(&self, state: &AppState) -> String {
        metrics::with_local_recorder(&self.recorder, || record(state));
        let mut out = self.recorder.handle().render();
        let plugins = state.registry.all();
        if !plugins.is_empty() {
            let _ = writeln!(out, "# TYPE {HISTOGRAM} histogram");
        }
        for plugin in plugins {
            histogram(
                &mut out,
                plugin.kind.as_str(),
                &plugin.version,
                &plugin.stats,
            );
        }
        out
    }
}

fn record(state: &AppState) {
    if let Some(feed) = &state.feed {
        record_feed(feed);
    }
    if let Some(pipeline) = &state.pipeline {
        record_pipeline(pipeline);
    }
    if let Some(process) = &state.process {
        record_process(process);
    }
    record_bus(state.bus.stats());
    record_plugins(&state.registry);
    record_ws(&state.ws);
}

fn record_feed(feed: &crate::feed::FeedStats) {
    counter!("tickstock_frames_received_total").absolute(feed.frames_received.load(Relaxed));
    counter!("tickstock_frames_dropped_total", "reason" => "queue_full")
        .absolute(feed.frames_dropped_queue_full.load(Relaxed));
    counter!("tickstock_frames_dropped_total", "reason" => "oversize")
        .absolute(feed.frames_dropped_oversize.load(Relaxed));
    counter!("tickstock_frames_dropped_total", "reason" => "binary")
        .absolute(feed.frames_dropped_binary.load(Relaxed));
    counter!("tickstock_feed_queue_waits_total").absolute(feed.queue_waits.load(Relaxed));
    counter!("tickstock_feed_queue_wait_microseconds_total")
        .absolute(feed.queue_wait_micros.load(Relaxed));
    counter!("tickstock_feed_reconnects_total").absolute(feed.reconnects.load(Relaxed));
    counter!("tickstock_feed_connect_attempts_total").absolute(feed.connect_attempts.load(Relaxed));
    for (status, value) in [
        ("max_connections", &feed.max_connections),
        ("slow_consumer", &feed.slow_consumer),
        ("force_disconnect", &feed.force_disconnect),
        ("error", &feed.status_errors),
    ] {
        counter!("tickstock_feed_status_events_total", "status" => status)
            .absolute(value.load(Relaxed));
    }
    gauge!("tickstock_feed_connected").set(if feed.is_streaming() { 1.0 } else { 0.0 });
}

fn record_pipeline(pipeline: &crate::pipeline::PipelineStats) {
    counter!("tickstock_ticks_received_total").absolute(pipeline.ticks.load(Relaxed));
    counter!("tickstock_normalizer_errors_total").absolute(pipeline.plugin_errors.load(Relaxed));
    counter!("tickstock_frames_normalized_total").absolute(pipeline.frames.load(Relaxed));
    for (reason, n) in pipeline.skipped_by_reason() {
        counter!("tickstock_events_skipped_total", "kind" => reason).absolute(n);
    }
}

fn record_process(process: &crate::health_loop::ProcessStats) {
    counter!("tickstock_ticks_processed_total").absolute(process.ticks_processed.load(Relaxed));
    counter!("tickstock_health_events_total").absolute(process.health_events.load(Relaxed));
    counter!("tickstock_invalid_ticks_total").absolute(process.invalid_ticks.load(Relaxed));
    counter!("tickstock_health_plugin_errors_total").absolute(process.plugin_errors.load(Relaxed));
}

fn record_bus(bus: &crate::bus::BusStats) {
    counter!("tickstock_ticks_published_total").absolute(bus.ticks_published.load(Relaxed));
    counter!("tickstock_ticks_dropped_total", "reason" => "bus_buffer_full")
        .absolute(bus.ticks_dropped.load(Relaxed));
    counter!("tickstock_ticks_dropped_total", "reason" => "refused_by_redis")
        .absolute(bus.ticks_refused.load(Relaxed));
    counter!("tickstock_ticks_unconfirmed_total").absolute(bus.ticks_unconfirmed.load(Relaxed));
    counter!("tickstock_bus_unconfirmed_total").absolute(bus.unconfirmed.load(Relaxed));
    for (code, n) in bus.refused_by_reason() {
        counter!("tickstock_bus_refused_total", "reason" => code).absolute(n);
    }
    counter!("tickstock_bus_published_total").absolute(bus.published.load(Relaxed));
    counter!("tickstock_bus_dropped_total").absolute(bus.dropped.load(Relaxed));
    counter!("tickstock_bus_lagged_total").absolute(bus.lagged.load(Relaxed));
    counter!("tickstock_redis_errors_total").absolute(bus.errors.load(Relaxed));
    counter!("tickstock_redis_reconnects_total").absolute(bus.reconnects.load(Relaxed));
    counter!("tickstock_redis_subscriptions_lost_total")
        .absolute(bus.subscriptions_lost.load(Relaxed));
    gauge!("tickstock_bus_connected").set(if bus.is_connected() { 1.0 } else { 0.0 });
}

fn record_plugins(registry: &crate::plugins::PluginRegistry) {
    for plugin in registry.all() {
        let labels = [
            ("kind", plugin.kind.as_str().to_string()),
            ("version", plugin.version.clone()),
        ];
        counter!("tickstock_plugin_calls_total", &labels)
            .absolute(CallStats::get(&plugin.stats.calls));
        counter!("tickstock_plugin_errors_total", &labels)
            .absolute(CallStats::get(&plugin.stats.errors));
        counter!("tickstock_plugin_deadline_errors_total", &labels)
            .absolute(CallStats::get(&plugin.stats.deadlines));
        counter!("tickstock_plugin_oversized_results_total", &labels)
            .absolute(CallStats::get(&plugin.stats.oversized));
        counter!("tickstock_plugin_log_lines_dropped_total", &labels)
            .absolute(CallStats::get(&plugin.stats.logs_dropped));
    }
    for kind in crate::plugins::PluginKind::ALL {
        counter!("tickstock_plugin_threads_abandoned_total", "kind" => kind.as_str())
            .absolute(registry.abandoned(kind));
        let history = registry.history(kind);
        for (action, automatic) in [("rolled_back", "false"), ("auto_rolled_back", "true")] {
            let n = history.iter().filter(|h| h.action == action).count() as u64;
            counter!("tickstock_plugin_rollbacks_total", "kind" => kind.as_str(), "automatic" => automatic)
                .absolute(n);
        }
    }
}

fn record_ws(ws: &super::ws::WsStats) {
    gauge!("tickstock_ws_clients").set(ws.clients.load(Relaxed) as f64);
    counter!("tickstock_ws_messages_sent_total").absolute(ws.sent.load(Relaxed));
    counter!("tickstock_ws_events_lagged_total").absolute(ws.lagged.load(Relaxed));
    counter!("tickstock_ws_clients_dropped_total").absolute(ws.dropped_slow.load(Relaxed));
    counter!("tickstock_ws_clients_refused_total", "reason" => "full")
        .absolute(ws.refused_full.load(Relaxed));
    counter!("tickstock_ws_clients_refused_total", "reason" => "origin")
        .absolute(ws.refused_origin.load(Relaxed));
}

/// The plugin call latency histogram, rendered here from the plugins' own
/// buckets.
const HISTOGRAM: &str = "tickstock_plugin_call_duration_seconds";

/// A label value as the Prometheus text format wants it: a plugin reports
/// its own version, which may hold any character.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn histogram(out: &mut String, kind: &str, version: &str, stats: &CallStats) {
    let name = HISTOGRAM;
    let labels = format!("kind=\"{kind}\",version=\"{}\"", escape_label(version));
    let mut cumulative = 0;
    let buckets = stats.buckets();
    for (i, n) in buckets.iter().enumerate() {
        cumulative += n;
        let le = match BUCKETS_US.get(i) {
            Some(us) => format!("{}", *us as f64 / 1e6),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(
        out,
        "{name}_sum{{{labels}}} {}",
        CallStats::get(&stats.total_ns) as f64 / 1e9
    );
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape_label(r#"1.0"\x"#), r#"1.0\"\\x"#);
        assert_eq!(super::escape_label("a\nb"), "a\\nb");
    }
}
