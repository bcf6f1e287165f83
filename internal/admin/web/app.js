// edgegw dashboard: polls the admin API and draws what it says. Plain
// JavaScript and SVG, no dependencies, so it works on an offline box.
"use strict";

const state = { token: "", samples: [], last: 0, interval: 2000, maxSamples: 300, timer: null };
const $ = (id) => document.getElementById(id);

function loadToken() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("edgegw-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  state.token = sessionStorage.getItem("edgegw-token") || "";
}

class Unauthorized extends Error {}

async function api(path) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401) throw new Unauthorized();
  if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
  return resp.json();
}

const fmt = new Intl.NumberFormat();
function num(v) { return fmt.format(v); }
function rate(v) { return v >= 100 ? fmt.format(Math.round(v)) : (Math.round(v * 10) / 10).toString(); }
function age(s) {
  if (!s) return "–";
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function time(t) { return new Date(t).toLocaleTimeString(); }
function setText(id, v) { const el = $(id); if (el.textContent !== String(v)) el.textContent = v; }

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fillTable(id, rows, build) {
  const body = $(id).tBodies[0];
  const trs = rows.map((r) => { const tr = document.createElement("tr"); build(tr, r); return tr; });
  body.replaceChildren(...trs);
}

function rates(samples, field) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt > 0) out.push([b.t, Math.max(0, (b[field] - a[field]) / dt)]);
  }
  return out;
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// chart draws series ([[t, v]...] with a CSS class each) over the same time axis.
function chart(id, series) {
  const svg = $(id), W = 600, H = 160, top = 12, bottom = 16;
  const all = series.flatMap((s) => s.points);
  const kids = [];
  if (all.length === 0) {
    kids.push(svgEl("text", { x: 8, y: 20 }));
    kids[0].textContent = "waiting for data…";
    svg.replaceChildren(...kids);
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const vmax = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => (t1 === t0 ? W : ((t - t0) / (t1 - t0)) * W);
  const y = (v) => top + (1 - v / vmax) * (H - top - bottom);
  for (const f of [0, 0.5, 1]) {
    kids.push(svgEl("line", { x1: 0, x2: W, y1: y(vmax * f), y2: y(vmax * f), class: "grid" }));
  }
  const label = svgEl("text", { x: 4, y: 10 });
  label.textContent = rate(vmax);
  kids.push(label);
  const span = svgEl("text", { x: 4, y: H - 4 });
  span.textContent = "last " + Math.max(1, Math.round((t1 - t0) / 60000)) + " min";
  kids.push(span);
  for (const s of series) {
    if (s.points.length === 0) continue;
    const pts = s.points.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
    kids.push(svgEl("polyline", { points: pts, class: s.cls }));
  }
  svg.replaceChildren(...kids);
}

function render(st) {
  setText("gw-id", st.gateway.id);
  setText("meta", "version " + st.gateway.version + " · up " + age(st.gateway.uptime_seconds) + " · DIS " + st.uplink.endpoint);
  const ready = $("ready");
  ready.textContent = st.ready.ready ? "ready" : "not ready";
  ready.className = "badge " + (st.ready.ready ? "ok" : "bad");
  const reasons = st.ready.reasons || [];
  $("ready-reasons").hidden = reasons.length === 0;
  setText("ready-reasons", reasons.join(" · "));

  const rejected = Object.values(st.ingest.rejected || {}).reduce((a, b) => a + b, 0);
  setText("clients", num(st.mqtt.clients_connected));
  const recv = st.mqtt.publishes_received;
  setText("received", num(recv.qos0 + recv.qos1 + recv.qos2));
  setText("buffered", num(st.buffer.records));
  setText("rejected", num(rejected));
  setText("dead-total", num(st.dead_letters.total));
  let sent = 0;
  const streams = Object.keys(st.uplink.streams || {}).sort();
  for (const s of streams) sent += st.uplink.streams[s].sent;
  setText("sent", num(sent));

  fillTable("uplink", streams, (tr, name) => {
    const u = st.uplink.streams[name], b = (st.buffer.streams || {})[name] || {};
    cell(tr, name);
    const td = cell(tr, "");
    const badge = document.createElement("span");
    badge.className = "state " + u.state;
    badge.textContent = u.state;
    td.appendChild(badge);
    cell(tr, num(b.records || 0) + " (" + bytes(b.bytes || 0) + ")");
    cell(tr, age(b.oldest_age_seconds));
    cell(tr, num(u.sent));
    cell(tr, num(u.retried));
    cell(tr, num(u.dead_lettered));
    cell(tr, num(u.failed_requests));
    cell(tr, u.last_error || "", "err");
  });

  const dl = st.downlink;
  $("downlink-none").hidden = !!dl;
  $("downlink").hidden = !dl;
  $("downlink-summary").hidden = !dl;
  if (dl) {
    setText("downlink-summary", dl.state + " · app " + dl.app + " · delivered " + num(dl.delivered) +
      " · dead-lettered " + num(dl.dead_lettered) + " · read errors " + num(dl.read_errors));
    fillTable("downlink", dl.partitions || [], (tr, p) => {
      cell(tr, p.stream); cell(tr, p.partition); cell(tr, p.state); cell(tr, num(p.lag)); cell(tr, num(p.delivered));
      cell(tr, p.last_error || "", "err");
    });
  }

  const errs = (st.recent_errors || []).slice().reverse();
  $("errors-none").hidden = errs.length > 0;
  fillTable("errors", errs, (tr, e) => {
    cell(tr, time(e.time) + " " + e.level, "when");
    const td = cell(tr, e.message, "msg");
    if (e.attrs) detail(td, e.attrs);
  });

  const dead = (st.dead_letters.recent || []).slice().reverse();
  $("dead-none").hidden = dead.length > 0;
  fillTable("dead", dead, (tr, d) => {
    cell(tr, time(d.time) + " " + (d.stream || "(unrouted)") + " · " + d.source + (d.code ? " " + d.code : ""), "when");
    const td = cell(tr, d.reason, "msg");
    if (d.preview) detail(td, d.preview);
  });
}

// detail adds a second, smaller line to a table cell.
function detail(td, text) {
  const code = document.createElement("code");
  code.className = "detail";
  code.textContent = text;
  td.appendChild(code);
}

function renderCharts() {
  const s = state.samples;
  const rin = rates(s, "publishes_received"), rup = rates(s, "uplink_sent");
  setText("rate-in", rin.length ? rate(rin[rin.length - 1][1]) : "–");
  setText("rate-up", rup.length ? rate(rup[rup.length - 1][1]) : "–");
  chart("chart-rate", [{ points: rin, cls: "in" }, { points: rup, cls: "up" }]);
  chart("chart-depth", [{ points: s.map((p) => [p.t, p.buffer_records]), cls: "depth" }]);
}

async function tick() {
  try {
    const [st, h] = await Promise.all([api("api/v1/status"), api("api/v1/history?since=" + state.last)]);
    state.interval = h.interval_ms || state.interval;
    for (const p of h.samples) { state.samples.push(p); state.last = p.t; }
    if (state.samples.length > state.maxSamples) state.samples.splice(0, state.samples.length - state.maxSamples);
    $("login").hidden = true;
    $("main").hidden = false;
    render(st);
    renderCharts();
    setText("conn", "updated " + new Date().toLocaleTimeString());
    $("conn").className = "conn";
  } catch (e) {
    if (e instanceof Unauthorized) {
      $("login").hidden = false;
      $("main").hidden = true;
      setText("login-error", state.token ? "That token was refused." : "");
      return; // wait for the form
    }
    setText("conn", "gateway unreachable, retrying…");
    $("conn").className = "conn down";
  }
  state.timer = setTimeout(tick, state.interval);
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("edgegw-token", state.token);
  clearTimeout(state.timer);
  tick();
});

loadToken();
tick();
