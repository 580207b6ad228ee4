"""A TickStock health plugin written in Python (world `health` of
tickstock:plugins@1), built into a WebAssembly component by componentize-py.

It reports the metrics every health plugin must (`active_symbols`,
`ticks_per_second`, `patterns_detected`, `indicators_calculated`), the
default plugin's totals, and one metric of its own: `busiest_symbol`, the
symbol with the most ticks in the window.

Two things to know when writing a plugin in Python:

- componentize-py creates a new instance of the exported class for every
  call, so nothing survives on `self`: the plugin's memory lives at module
  level (`STATE` below).
- The host passes time in (`now_ms`); a plugin reads no clock.

Its state speaks the default plugin's export format (`tickstock-health/1`),
so a hot swap from or to the default Rust plugin carries the totals and
windows across.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    HealthReport,
    HealthStatus,
    HostState,
    LogLevel,
    Metric,
    MetricValue_Float,
    MetricValue_Integer,
    MetricValue_Text,
    PluginInfo,
    Tick,
)

NAME = "python-health"
VERSION = "1.0.0"
STATE_FORMAT = "tickstock-health/1"
# Silence while subscribed longer than this is `degraded`.
STALL_MS = 30_000
# The longest reason and text metric reported, in bytes.
MAX_REASON_BYTES = 1_024
MAX_TEXT_BYTES = 256
# Before the host's first report tells its window.
DEFAULT_WINDOW_MS = 10_000


def fresh_state():
    return {
        # [arrival ms, ticks] pairs, oldest first; only the last window.
        "arrivals": [],
        # symbol -> last arrival ms; only the last window.
        "last_seen": {},
        # symbol -> [arrival ms, ...] of the window (for `busiest_symbol`).
        "per_symbol": {},
        "total_ticks": 0,
        "started_ms": None,
        "last_tick_ms": None,
        "peak_tps": 0.0,
        "window_ms": 0,
    }


STATE = fresh_state()


def prune(cutoff_ms):
    arrivals = STATE["arrivals"]
    drop = 0
    while drop < len(arrivals) and arrivals[drop][0] <= cutoff_ms:
        drop += 1
    del arrivals[:drop]
    STATE["last_seen"] = {s: t for s, t in STATE["last_seen"].items() if t > cutoff_ms}
    per_symbol = {}
    for symbol, times in STATE["per_symbol"].items():
        kept = [t for t in times if t > cutoff_ms]
        if kept:
            per_symbol[symbol] = kept
    STATE["per_symbol"] = per_symbol


def integer(name, value):
    return Metric(name, MetricValue_Integer(int(value)))


def real(name, value):
    return Metric(name, MetricValue_Float(float(value)))


class HealthMetrics(exports.HealthMetrics):
    def info(self) -> PluginInfo:
        return PluginInfo(NAME, VERSION)

    def observe(self, ticks: list[Tick], now_ms: int) -> None:
        if STATE["started_ms"] is None:
            STATE["started_ms"] = now_ms
        if not ticks:
            return
        arrivals = STATE["arrivals"]
        if arrivals and arrivals[-1][0] == now_ms:
            arrivals[-1][1] += len(ticks)
        else:
            arrivals.append([now_ms, len(ticks)])
        last_seen, per_symbol = STATE["last_seen"], STATE["per_symbol"]
        for tick in ticks:
            last_seen[tick.symbol] = now_ms
            per_symbol.setdefault(tick.symbol, []).append(now_ms)
        STATE["total_ticks"] += len(ticks)
        STATE["last_tick_ms"] = now_ms
        # Keep memory bounded even if the host never asks for a report.
        if len(arrivals) > 100_000:
            prune(now_ms - (STATE["window_ms"] or DEFAULT_WINDOW_MS))

    def report(self, now_ms: int, host_state: HostState) -> HealthReport:
        if STATE["started_ms"] is None:
            STATE["started_ms"] = now_ms
        window_ms = max(1, host_state.window_ms)
        STATE["window_ms"] = window_ms
        prune(now_ms - window_ms)
        window_ticks = sum(n for t, n in STATE["arrivals"] if t <= now_ms)
        observed = now_ms - STATE["started_ms"]
        span_ms = window_ms if observed >= window_ms else min(max(observed, 1_000), window_ms)
        tps = round(window_ticks * 1_000 / span_ms, 2)
        STATE["peak_tps"] = max(STATE["peak_tps"], tps)
        busiest = max(STATE["per_symbol"].items(), key=lambda kv: (len(kv[1]), kv[0]), default=None)
        # The host refuses a text metric over 1 KiB: symbols are short, but
        # nothing guarantees it.
        busiest_symbol = busiest[0].encode()[:MAX_TEXT_BYTES].decode(errors="ignore") if busiest else ""

        metrics = [
            integer("active_symbols", len(STATE["last_seen"])),
            real("ticks_per_second", tps),
            integer("patterns_detected", 0),
            integer("indicators_calculated", 0),
            integer("total_ticks", STATE["total_ticks"]),
            integer("window_ticks", window_ticks),
            real("window_seconds", window_ms / 1_000),
            integer("subscribed_symbols", host_state.subscribed_symbols),
            real("peak_ticks_per_second", STATE["peak_tps"]),
            Metric("busiest_symbol", MetricValue_Text(busiest_symbol)),
        ]
        if STATE["last_tick_ms"] is not None:
            since = max(0, now_ms - STATE["last_tick_ms"])
            metrics.append(real("seconds_since_last_tick", round(since / 100) / 10))
        status, reasons = HealthStatus.HEALTHY, []
        if not host_state.bus_connected:
            reasons.append("event bus unreachable")
        if not host_state.feed_connected:
            reasons.append("market feed disconnected")
        if host_state.dropped_since_last_report > 0:
            reasons.append(f"{host_state.dropped_since_last_report} ticks dropped since the last report")
        reasons.extend(host_state.issues)
        if host_state.subscribed_symbols > 0:
            since = STATE["last_tick_ms"] or STATE["started_ms"]
            if now_ms - since >= STALL_MS:
                reasons.append(f"no ticks for {(now_ms - since) // 1_000}s")
        if reasons:
            status = HealthStatus.DEGRADED
        # The host refuses a reason over 4 KiB; the host's own issues can be long.
        reason = "; ".join(reasons).encode()[:MAX_REASON_BYTES].decode(errors="ignore")
        return HealthReport(status, reason, metrics)

    def export_state(self) -> bytes:
        # `per_symbol` is this plugin's own; the default plugin ignores it.
        return json.dumps({"format": STATE_FORMAT, "state": STATE}).encode()

    def import_state(self, state: bytes, previous: PluginInfo) -> None:
        global STATE
        try:
            exported = json.loads(state)
            if exported.get("format") != STATE_FORMAT:
                raise ValueError(f"state format {exported.get('format')!r} is not {STATE_FORMAT!r}")
            imported = fresh_state()
            for key in imported:
                if key in exported["state"]:
                    imported[key] = exported["state"][key]
            imported["arrivals"] = [list(pair) for pair in imported["arrivals"]]
            STATE = imported
        except Exception as err:  # any unreadable state: start fresh, say why
            STATE = fresh_state()
            raise Err(f"cannot read the state of {previous.name} {previous.version}: {err}; starting fresh")
        host.log(LogLevel.INFO, f"imported state of {previous.name} {previous.version}")
