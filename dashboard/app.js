// TickStock dashboard: one WebSocket (/ws) pushes a snapshot on connect and
// every event after; this script renders them. It reconnects by itself and
// says when it is disconnected.
"use strict";

const $ = (id) => document.getElementById(id);
// Fields shown in their own panels, not in the extra-metrics table. The
// contract's names (required metrics, host fields) arrive with the snapshot,
// so they are spelled once, in the host's `contract` module.
const SHOWN_ELSEWHERE = ["data_flow", "reason"];
let CORE = new Set(SHOWN_ELSEWHERE);
const state = { session: null, lastStatus: null, feedState: null, tps: [[], []] };
let chart = null;

function fmt(n, digits) {
  if (typeof n !== "number") return n == null ? "—" : String(n);
  return n.toLocaleString(undefined, { maximumFractionDigits: digits ?? 2 });
}

function log(text, at) {
  const li = document.createElement("li");
  const t = document.createElement("time");
  t.textContent = (at ? new Date(at) : new Date()).toLocaleTimeString();
  li.append(t, document.createTextNode(text));
  const ol = $("log");
  ol.prepend(li);
  while (ol.children.length > 200) ol.lastChild.remove();
}

// One line of the event log for an event of `kind` (the same for events
// seeded from the snapshot and live ones).
function describe(kind, ev) {
  const session = (e) => (e.session || e).session_id;
  switch (kind) {
    case "session_started": return `session started: ${session(ev)}`;
    case "session_stopped": return `session stopped: ${session(ev)}`;
    case "health": { const h = ev.health || ev; return `status ${h.status}${h.reason ? ": " + h.reason : ""}`; }
    case "feed": return `feed ${ev.state}${ev.issue ? ": " + ev.issue : ""}`;
    case "plugin":
      if (ev.type === "plugin_shadow") return `plugin ${ev.kind} ${ev.message || ""}`;
      if (ev.type === "fleet_applied") return `fleet ${ev.kind} ${ev.action} generation ${ev.generation} ${ev.outcome}: ${ev.message || ""}`;
      return `plugin ${ev.type}: ${ev.kind || ""} ${ev.version || ""} ${ev.message || ""}`;
  }
  return null;
}

function renderSession(s) {
  state.session = s;
  $("session-id").textContent = s ? s.session_id : "—";
  $("universe").textContent = s ? s.universe : "—";
  $("symbol-count").textContent = s && s.symbol_count != null ? `(${s.symbol_count} symbols)` : "";
  $("start-time").textContent = s && s.start_time ? new Date(s.start_time).toLocaleString() : "—";
  tickUptime();
}

function tickUptime() {
  const s = state.session;
  if (!s || !s.start_time) { $("uptime").textContent = "—"; return; }
  const end = s.status === "stopped" && s.stop_time ? new Date(s.stop_time) : new Date();
  let secs = Math.max(0, Math.floor((end - new Date(s.start_time)) / 1000));
  const h = Math.floor(secs / 3600); secs -= h * 3600;
  const m = Math.floor(secs / 60); secs -= m * 60;
  $("uptime").textContent = (h ? `${h}h ` : "") + `${m}m ${secs}s` + (s.status === "stopped" ? " (stopped)" : "");
}

function renderHealth(h) {
  if (!h) return;
  const status = h.status || "unknown";
  const badge = $("status");
  badge.textContent = status;
  badge.className = "badge badge-" + (["healthy", "degraded", "error"].includes(status) ? status : "unknown");
  $("reason").textContent = status === "healthy" ? "" : (h.reason || "");
  $("active-symbols").textContent = fmt(h.active_symbols, 0);
  const tps = (h.data_flow && h.data_flow.ticks_per_second) ?? h.ticks_per_second;
  $("tps").textContent = fmt(tps, 1);
  $("health-age").textContent = h.timestamp ? new Date(h.timestamp).toLocaleTimeString() : "—";
  if (state.lastStatus !== null && state.lastStatus !== status) log(`status ${state.lastStatus} → ${status}${h.reason ? ": " + h.reason : ""}`);
  state.lastStatus = status;
  const rows = Object.entries(h).filter(([k]) => !CORE.has(k)).sort(([a], [b]) => a.localeCompare(b));
  const body = $("metrics").tBodies[0];
  body.replaceChildren(...rows.map(([k, v]) => row([k.replaceAll("_", " "), typeof v === "number" ? fmt(v) : JSON.stringify(v)], [false, true])));
  if (h.timestamp && typeof tps === "number") {
    const t = new Date(h.timestamp).getTime() / 1000;
    const [xs, ys] = state.tps;
    if (!xs.length || t > xs[xs.length - 1]) { xs.push(t); ys.push(tps); }
    while (xs.length && xs[0] < t - 15 * 60) { xs.shift(); ys.shift(); }
    drawChart();
  }
}

function row(cells, numeric) {
  const tr = document.createElement("tr");
  cells.forEach((c, i) => {
    const td = document.createElement("td");
    td.textContent = c;
    if (numeric && numeric[i]) td.className = "num";
    tr.append(td);
  });
  return tr;
}

function renderFeed(f) {
  if (!f) return;
  const label = f.state ? f.state.replaceAll("_", " ") : "—";
  $("feed-state").textContent = label;
  $("feed-detail").textContent = [f.issue, `reconnects ${fmt(f.reconnects, 0)}`, `dropped ${fmt(f.frames_dropped, 0)}`].filter(Boolean).join(" · ");
  if (state.feedState !== null && state.feedState !== f.state) log(`feed ${state.feedState} → ${f.state}${f.issue ? ": " + f.issue : ""}`);
  state.feedState = f.state;
}

function renderPlugins(byKind) {
  const body = $("plugins").tBodies[0];
  const rows = Object.values(byKind || {}).sort((a, b) => String(a.kind).localeCompare(b.kind)).map((p) =>
    row([p.kind, `${p.name} ${p.version}`, p.wit_version, fmt(p.calls, 0), fmt(p.errors, 0), p.p99_ms == null ? "—" : `${fmt(p.p99_ms, 3)} ms`],
      [false, false, false, true, true, true]));
  body.replaceChildren(...rows);
}

// The shadow runs, one block per kind: what the candidate would change.
function renderShadows(byKind) {
  const blocks = Object.values(byKind || {}).sort((a, b) => String(a.kind).localeCompare(b.kind)).map((ev) => {
    const r = ev.report || {};
    const f = r.fields || {};
    const names = (m) => Object.keys(m || {}).join(", ") || "none";
    const errors = Object.entries(r.candidate_errors || {}).map(([k, n]) => `${k} ${n}`).join(", ") || "none";
    const p99 = (l) => (l && l.p99_ms != null ? `${fmt(l.p99_ms, 3)} ms` : "—");
    const div = document.createElement("div");
    div.className = "shadow";
    const title = document.createElement("div");
    title.className = "shadow-title";
    const candidate = r.candidate || {}, live = r.live || {};
    const ended = r.ended_at ? `ended (${r.end_reason || "stopped"})` : "running";
    title.textContent = `Shadow ${ev.kind}: ${candidate.name || ""} ${candidate.version || ""} vs live ${live.version || ""} — ${ended}`;
    const lines = [
      `${fmt(r.inputs_compared, 0)} inputs: ${fmt(r.identical, 0)} identical, ${fmt(r.different, 0)} different; ${fmt(r.skipped_inputs, 0)} skipped`,
      `fields added: ${names(f.added)}; removed: ${names(f.removed)}; changed: ${names(f.changed)}`,
      `candidate errors: ${errors}; p99 live ${p99(r.live_latency)}, candidate ${p99(r.candidate_latency)}`,
    ].map((text) => { const p = document.createElement("div"); p.textContent = text; return p; });
    div.append(title, ...lines);
    return div;
  });
  $("shadow").replaceChildren(...blocks);
}

// The fleet (with Redis): every live instance, what it runs, and whether
// that is the desired version. Hidden when this process has no fleet.
function renderFleet(f) {
  const card = $("fleet-card");
  if (!f || !Array.isArray(f.instances)) { card.hidden = true; return; }
  card.hidden = false;
  const short = (sha) => String(sha || "").slice(0, 12);
  const desired = Object.entries(f.desired || {})
    .map(([kind, d]) => `${kind}: generation ${d.generation}, ${d.action} ${short(d.sha256)}`).join(" · ");
  $("fleet-desired").textContent = `desired: ${desired || "nothing issued yet"} — ${f.converged ? "every instance runs it" : "NOT every instance runs it"}`;
  const running = (m, kind) => { const a = (m.active || {})[kind]; return a ? `${a.name} ${a.version} (${short(a.sha256)})` : "—"; };
  const rows = f.instances.map((m) => {
    const ok = Object.values(m.matches || {}).every(Boolean);
    const tr = row([m.instance_id.slice(0, 8), m.role, m.host, running(m, "normalizer"), running(m, "health"),
      (ok ? "yes" : "NO") + (m.fleet_key ? "" : " (no fleet key)")]);
    if (!ok) tr.className = "diverged";
    return tr;
  });
  $("fleet").tBodies[0].replaceChildren(...rows);
}

async function pollFleet() {
  try {
    const r = await fetch("/api/fleet");
    renderFleet(r.ok ? await r.json() : null);
  } catch (_) { /* the socket's indicator says we are disconnected */ }
}

function renderTop(list) {
  const body = $("top-symbols").tBodies[0];
  body.replaceChildren(...(list || []).map((s) => row([s.symbol, fmt(s.price, 2), fmt(s.ticks, 0)], [false, true, true])));
}

function drawChart() {
  const el = $("chart");
  const width = Math.max(280, el.clientWidth);
  if (!chart) {
    chart = new uPlot({
      width, height: 220,
      scales: { x: { time: true } },
      axes: [{
        stroke: "#8b98a5", grid: { stroke: "#222c38" },
        // Whole seconds at least, labelled as a clock.
        incrs: [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600],
        space: 70,
        values: (u, splits) => splits.map(timeLabel),
      }, { stroke: "#8b98a5", grid: { stroke: "#222c38" } }],
      series: [{}, { label: "ticks/sec", stroke: "#58a6ff", width: 2, fill: "rgba(88,166,255,0.12)" }],
    }, state.tps, el);
  } else {
    chart.setData(state.tps);
  }
}
// A chart time (Unix seconds) as a clock: 14:03:25.
function timeLabel(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}
window.tickstockChart = () => chart;
window.addEventListener("resize", () => { if (chart) chart.setSize({ width: Math.max(280, $("chart").clientWidth), height: 220 }); });

let status = { plugin_status: {}, plugin_shadow: {} };
function apply(msg) {
  // The label follows the status API's rule, computed by the server.
  if (msg.api_status) $("api-status").textContent = msg.api_status;
  switch (msg.kind) {
    case "snapshot": {
      const contract = msg.contract || {};
      CORE = new Set([...SHOWN_ELSEWHERE, ...(contract.required_metrics || []), ...(contract.host_fields || [])]);
      const st = msg.status || {};
      $("api-status").textContent = st.status || "offline";
      renderSession(st.session);
      renderHealth(st.health);
      renderFeed(st.feed);
      status.plugin_status = msg.plugin_status || {};
      renderPlugins(status.plugin_status);
      status.plugin_shadow = msg.plugin_shadow || {};
      renderShadows(status.plugin_shadow);
      renderTop(msg.top_symbols);
      // The session's events so far, then live ones on top.
      $("log").replaceChildren();
      for (const r of msg.recent_events || []) {
        const text = describe(r.kind, r.event || {});
        if (text) log(text, r.at);
      }
      break;
    }
    case "session_started":
    case "session_stopped":
      renderSession(msg.event.session || msg.event);
      log(describe(msg.kind, msg.event));
      break;
    case "health":
      // A dashboard that missed the session's start learns it here.
      if (msg.event.session && (!state.session || state.session.session_id !== msg.event.session.session_id)) {
        renderSession(msg.event.session);
      }
      renderHealth(msg.event.health || msg.event);
      break;
    case "feed": renderFeed(msg.event); break;
    case "top_symbols": renderTop(msg.event); break;
    case "plugin":
      if (msg.event.type === "plugin_status") {
        status.plugin_status[msg.event.kind] = msg.event;
        renderPlugins(status.plugin_status);
      } else if (msg.event.type === "plugin_shadow") {
        status.plugin_shadow[msg.event.kind] = msg.event;
        renderShadows(status.plugin_shadow);
        const r = msg.event.report || {};
        if (r.ended_at || String(msg.event.message).startsWith("shadow started")) log(describe("plugin", msg.event));
      } else {
        log(describe("plugin", msg.event));
      }
      break;
  }
}

// Health goes stale without any event saying so: ask the status API.
setInterval(async () => {
  try {
    const st = await (await fetch("/streaming/api/status")).json();
    $("api-status").textContent = st.status;
  } catch (_) { /* the socket's indicator says we are disconnected */ }
}, 5000);

let delay = 500;
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => {
    delay = 500;
    const c = $("conn");
    c.textContent = "live"; c.className = "conn conn-up";
  };
  ws.onmessage = (e) => {
    try { apply(JSON.parse(e.data)); } catch (err) { console.warn("bad message", err); }
  };
  ws.onclose = () => {
    const c = $("conn");
    c.textContent = `disconnected — retrying in ${(delay / 1000).toFixed(1)} s`; c.className = "conn conn-down";
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10000);
  };
}
setInterval(tickUptime, 1000);
setInterval(pollFleet, 2000);
pollFleet();
connect();
