//! How large a plugin's results may be. A result is lifted out of the
//! guest's memory (itself capped) into host memory and then published, so
//! each piece has a ceiling; a result past one is refused as a failed call
//! ([`super::CallError::Oversized`]), counted, and (for a normalizer) its
//! frame is dead-lettered.

use super::bindings::{HealthReport, MetricValue, Normalized};

/// Ticks one frame may produce (a Massive frame carries at most a few
/// thousand events).
pub const MAX_TICKS_PER_FRAME: usize = 100_000;
/// Bytes of one tick's wire payload.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 10;
/// Bytes of one tick's symbol.
pub const MAX_SYMBOL_BYTES: usize = 64;
/// Metrics in one health report.
pub const MAX_METRICS: usize = 256;
/// Bytes of a metric name, or of a text metric's value.
pub const MAX_METRIC_BYTES: usize = 1 << 10;
/// Bytes of a health report's reason.
pub const MAX_REASON_BYTES: usize = 4 << 10;

/// What is too large in a normalizer's result, if anything.
pub fn check_normalized(out: &Normalized) -> Result<(), String> {
    if out.ticks.len() > MAX_TICKS_PER_FRAME {
        return Err(format!(
            "{} ticks from one frame (at most {MAX_TICKS_PER_FRAME})",
            out.ticks.len()
        ));
    }
    for t in &out.ticks {
        if t.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(format!(
                "a payload of {} bytes (at most {MAX_PAYLOAD_BYTES})",
                t.payload.len()
            ));
        }
        if t.tick.symbol.len() > MAX_SYMBOL_BYTES {
            return Err(format!(
                "a symbol of {} bytes (at most {MAX_SYMBOL_BYTES})",
                t.tick.symbol.len()
            ));
        }
    }
    if out.skipped.len() > MAX_TICKS_PER_FRAME {
        return Err(format!(
            "{} skipped events from one frame",
            out.skipped.len()
        ));
    }
    Ok(())
}

/// What is too large in a health report, if anything.
pub fn check_report(report: &HealthReport) -> Result<(), String> {
    if report.metrics.len() > MAX_METRICS {
        return Err(format!(
            "{} metrics (at most {MAX_METRICS})",
            report.metrics.len()
        ));
    }
    if report.reason.len() > MAX_REASON_BYTES {
        return Err(format!(
            "a reason of {} bytes (at most {MAX_REASON_BYTES})",
            report.reason.len()
        ));
    }
    for m in &report.metrics {
        let text = match &m.value {
            MetricValue::Text(t) => t.len(),
            _ => 0,
        };
        if m.name.len() > MAX_METRIC_BYTES || text > MAX_METRIC_BYTES {
            return Err(format!(
                "metric {:.40}… is longer than {MAX_METRIC_BYTES} bytes",
                m.name
            ));
        }
    }
    Ok(())
}
