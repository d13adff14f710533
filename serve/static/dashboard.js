// The recenv dashboard: reads GET /v1/dashboard/summary and draws hand-written SVG charts.
// No library and no network access beyond this server. Once every chart is drawn,
// document.body.dataset.ready = "true"; if the API fails, #error says why (and ready is
// "error"); if the server wants an API key, #api-key-form asks for it (ready is "key"). So a
// browser test can wait for any of them. The key is sent as X-API-Key and kept in this tab's
// sessionStorage; /dashboard#key=<key> gives it without typing (the fragment never leaves the
// browser, and is removed from the address bar at once).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const KEY_STORAGE = "recenv-api-key";
const REFRESH_MS = 30000;
const COLORS = { bar: "#2563eb", muted: "#94a3b8", accent: "#d97706", good: "#059669" };

const usd = (v) =>
  v === null || v === undefined
    ? "–"
    : (v < 0 ? "−$" : "$") +
      Math.abs(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %");
const count = (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US"));
const compact = (v) => {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
};

function el(name, attrs, parent, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function niceTicks(low, high, n) {
  if (high === low) high = low + 1;
  const raw = (high - low) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  // from below low to at least high, so every bar and whisker lies inside the axis
  const ticks = [+(Math.floor(low / step) * step).toFixed(10)];
  while (ticks[ticks.length - 1] < high - step * 1e-9) ticks.push(+(ticks[ticks.length - 1] + step).toFixed(10));
  return ticks;
}

function clear(svg, height) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = Math.max(svg.clientWidth || svg.parentNode.clientWidth || 600, 280);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("height", height);
  return width;
}

function empty(svg, message) {
  const width = clear(svg, 60);
  el("text", { x: width / 2, y: 34, "text-anchor": "middle", class: "empty" }, svg, message);
  svg.dataset.rendered = "true";
}

// Vertical bars over time: points [{start, value}], ticks as dates.
function timeChart(svg, points, unit, color) {
  if (!points.length || points.every((p) => p.value === 0)) return empty(svg, `no ${unit} in this range`);
  const labelOf = (p) => new Date(p.start * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const tickOf = (p) => {
    const date = new Date(p.start * 1000).toISOString();
    return date.slice(5, 10) + (points.length <= 72 ? " " + date.slice(11, 16) : "");
  };
  columnChart(svg, points, unit, color, labelOf, tickOf, 6);
}

// Vertical bars: points [{value}], hover text labelOf(point), at most `labels` axis labels.
function columnChart(svg, points, unit, color, labelOf, tickOf, labels) {
  const height = 220, m = { l: 52, r: 12, t: 10, b: 34 };
  const width = clear(svg, height);
  const max = Math.max(...points.map((p) => p.value));
  const ticks = niceTicks(0, max, 4);
  const top = ticks[ticks.length - 1];
  const y = (v) => m.t + (height - m.t - m.b) * (1 - v / top);
  const step = (width - m.l - m.r) / points.length;
  for (const t of ticks) {
    el("line", { x1: m.l, x2: width - m.r, y1: y(t), y2: y(t), class: "grid" }, svg);
    el("text", { x: m.l - 6, y: y(t) + 4, "text-anchor": "end", class: "tick" }, svg, compact(t));
  }
  points.forEach((p, i) => {
    const bar = el("rect", {
      x: m.l + i * step + step * 0.1, y: y(p.value), width: Math.max(step * 0.8, 1),
      height: Math.max(y(0) - y(p.value), 0), fill: color,
    }, svg);
    el("title", {}, bar, `${labelOf(p)}: ${count(p.value)} ${unit}`);
  });
  const shown = Math.min(labels, points.length);
  for (let k = 0; k < shown; k++) {
    const i = Math.round((k * (points.length - 1)) / Math.max(shown - 1, 1));
    el("text", { x: m.l + (i + 0.5) * step, y: height - 12, "text-anchor": "middle", class: "tick" }, svg, tickOf(points[i]));
  }
  svg.dataset.rendered = "true";
}

// Horizontal bars, one per row {label, value, low, high, note}; whiskers where low/high exist.
function barChart(svg, rows, format, color) {
  rows = rows.filter((r) => r.value !== null && r.value !== undefined);
  if (!rows.length) return empty(svg, "no data in this range yet");
  const rowHeight = 26, m = { l: 150, r: 90, t: 8, b: 26 };
  const height = m.t + m.b + rows.length * rowHeight;
  const width = clear(svg, height);
  const values = rows.flatMap((r) => [r.value, r.low ?? r.value, r.high ?? r.value, 0]);
  const ticks = niceTicks(Math.min(...values), Math.max(...values), 4);
  const low = ticks[0], high = ticks[ticks.length - 1];
  const x = (v) => m.l + ((width - m.l - m.r) * (v - low)) / (high - low);
  for (const t of ticks) {
    el("line", { x1: x(t), x2: x(t), y1: m.t, y2: height - m.b, class: t === 0 ? "axis" : "grid" }, svg);
    el("text", { x: x(t), y: height - 8, "text-anchor": "middle", class: "tick" }, svg, format(t));
  }
  rows.forEach((r, i) => {
    const yMid = m.t + i * rowHeight + rowHeight / 2;
    el("text", { x: m.l - 8, y: yMid + 4, "text-anchor": "end", class: "label" }, svg, r.label);
    const bar = el("rect", {
      x: Math.min(x(0), x(r.value)), y: yMid - 8, width: Math.max(Math.abs(x(r.value) - x(0)), 1),
      height: 16, fill: r.color || color,
    }, svg);
    el("title", {}, bar, `${r.label}: ${format(r.value)}${r.note ? " (" + r.note + ")" : ""}`);
    if (r.low !== null && r.low !== undefined && r.high !== null && r.high !== undefined) {
      el("line", { x1: x(r.low), x2: x(r.high), y1: yMid, y2: yMid, class: "whisker" }, svg);
      for (const v of [r.low, r.high]) el("line", { x1: x(v), x2: x(v), y1: yMid - 5, y2: yMid + 5, class: "whisker" }, svg);
    }
    el("text", { x: width - m.r + 6, y: yMid + 4, class: "value" }, svg, format(r.value) + (r.note ? " " + r.note : ""));
  });
  svg.dataset.rendered = "true";
}

function estimateRow(label, e, color) {
  return { label, value: e.value, low: e.ci_low, high: e.ci_high, note: `n=${compact(e.n)}`, color };
}

function render(data, seconds) {
  const unit = data.range.bucket === "day" ? "per day" : "per hour";
  document.getElementById("decisions-unit").textContent = unit;
  document.getElementById("rewards-unit").textContent = unit + " (by the time recorded)";
  document.getElementById("model-version").textContent = `${data.model.model_version} (${data.model.algorithm})`;
  document.getElementById("n-updates").textContent = data.model.online ? count(data.model.n_updates) : "offline policy";
  document.getElementById("total-decisions").textContent = count(data.rewards.decisions);
  document.getElementById("total-rewarded").textContent = `${count(data.rewards.rewarded)} (${usd(data.rewards.reward_sum)})`;
  document.getElementById("total-pending").textContent = count(data.rewards.pending_windows);
  document.getElementById("total-without").textContent = count(data.rewards.without_reward);
  document.getElementById("load-time").textContent = `${(seconds * 1000).toFixed(0)} ms`;

  timeChart(document.getElementById("chart-decisions"),
    data.series.map((p) => ({ start: p.start, value: p.decisions })), "decisions", COLORS.bar);
  timeChart(document.getElementById("chart-rewards"),
    data.series.map((p) => ({ start: p.start, value: p.rewards })), "final rewards", COLORS.good);

  const ope = data.off_policy;
  document.getElementById("off-policy-note").textContent =
    `Treated decisions of ${ope.model_version} with a final reward; always ${ope.baseline_action} ` +
    "estimated from them by inverse propensity scoring.";
  barChart(document.getElementById("chart-off-policy"), [
    estimateRow("running policy", ope.running_policy, COLORS.bar),
    estimateRow(`always ${ope.baseline_action}`, ope.baseline, COLORS.muted),
    estimateRow("difference", ope.difference, COLORS.accent),
  ], usd);
  barChart(document.getElementById("chart-holdout"), [
    estimateRow("treated", data.holdout.treated, COLORS.bar),
    estimateRow("holdout", data.holdout.holdout, COLORS.muted),
    estimateRow("difference", data.holdout.difference, COLORS.accent),
  ], usd);
  barChart(document.getElementById("chart-action-mix"),
    data.action_mix.map((a) => ({ label: a.action, value: a.share, note: `(${compact(a.decisions)})` })), pct, COLORS.bar);
  const edges = data.propensities.edges;
  const bins = data.propensities.counts.map((c, i) => ({ low: edges[i], high: edges[i + 1], value: c }));
  const propensities = document.getElementById("chart-propensities");
  if (bins.every((b) => b.value === 0)) empty(propensities, "no decisions in this range");
  else columnChart(propensities, bins, "decisions", COLORS.bar,
    (b) => `propensity ${b.low.toFixed(2)}–${b.high.toFixed(2)}`,
    (b) => (Math.round(b.low * 20) % 4 === 0 ? b.low.toFixed(1) : ""), bins.length);
  barChart(document.getElementById("chart-conversion"),
    data.actions.map((a) => estimateRow(a.action, a.conversion)), pct, COLORS.good);
  barChart(document.getElementById("chart-profit"),
    data.actions.map((a) => estimateRow(a.action, a.profit)), usd, COLORS.good);
}

function queryString() {
  const preset = document.getElementById("range-preset").value;
  const params = new URLSearchParams({ bucket: document.getElementById("range-bucket").value });
  if (preset === "custom") {
    const since = document.getElementById("range-since").value;
    const until = document.getElementById("range-until").value;
    if (since) params.set("since", since + "Z");
    if (until) params.set("until", until + "Z");
  } else {
    params.set("since", String(Math.floor(Date.now() / 1000) - Number(preset) * 3600));
  }
  return params.toString();
}

function showError(message) {
  const banner = document.getElementById("error");
  banner.textContent = message;
  banner.hidden = false;
  document.body.dataset.ready = "error";
}

let retry = null;
let last = null;
async function load() {
  clearTimeout(retry);
  const headers = {};
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers["X-API-Key"] = key;
  const started = performance.now();
  let response;
  try {
    response = await fetch(`/v1/dashboard/summary?${queryString()}`, { headers });
  } catch (exc) {
    return showError(`The service did not answer: ${exc}`);
  }
  if (response.status === 401) {
    document.getElementById("api-key-form").hidden = false;
    document.body.dataset.ready = "key";
    return;
  }
  const data = await response.json().catch(() => null);
  if (!response.ok || data === null) {
    const detail = data && data.detail;
    const text = Array.isArray(detail) ? detail.map((d) => `${d.loc.slice(-1)[0]}: ${d.msg}`).join("; ") : detail;
    return showError(`The dashboard API failed (HTTP ${response.status}): ${text || "no detail"}`);
  }
  document.getElementById("error").hidden = true;
  document.getElementById("api-key-form").hidden = true;
  last = { data, seconds: (performance.now() - started) / 1000 };
  render(last.data, last.seconds);
  const catching = document.getElementById("catching-up");
  catching.hidden = data.catch_up.caught_up;
  catching.textContent = data.catch_up.caught_up ? "" :
    `Summarising the decision log (through request ${count(data.catch_up.request_watermark)}); the numbers will grow.`;
  if (!data.catch_up.caught_up) retry = setTimeout(load, 1000);
  else if (document.getElementById("auto-refresh").checked) retry = setTimeout(load, REFRESH_MS);
  document.body.dataset.ready = "true";
}

document.getElementById("range-preset").addEventListener("change", (event) => {
  const custom = event.target.value === "custom";
  for (const id of ["range-since", "range-until"]) document.getElementById(id).disabled = !custom;
  if (!custom) load();
});
document.getElementById("range-bucket").addEventListener("change", () => load());
document.getElementById("range-form").addEventListener("submit", (event) => { event.preventDefault(); load(); });
document.getElementById("api-key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, document.getElementById("api-key").value);
  load();
});
let resizing = null;
window.addEventListener("resize", () => {  // redraw the last answer at the new width
  clearTimeout(resizing);
  resizing = setTimeout(() => { if (last) render(last.data, last.seconds); }, 200);
});
const fragment = new URLSearchParams(window.location.hash.slice(1));
if (fragment.has("key")) {
  sessionStorage.setItem(KEY_STORAGE, fragment.get("key"));
  history.replaceState(null, "", window.location.pathname + window.location.search);
}
load();
