// admin.js: /admin: monitoring (metric cards, a requests/thumbs-down/flags chart in inline SVG, usage by
// family, top flagged categories), the triage queue, and the training-data export. Needs the admin role.
//
// Stable hooks for tests (besides common.js's #login-*, #topbar, #nav-*, #logout, #forbidden):
//   #metrics-hours (select 1|24|168), #metrics-refresh, #metrics-error
//   #metric-cards              .metric-card[data-metric=KEY] with .metric-value; KEY is one of requests, tokens,
//                              latency_p50, latency_p95, latency_p99, ttft_p50, ttft_p95, ttft_p99,
//                              feedback_rate, thumbs_down_rate, flag_rate
//   #metrics-chart             <svg class="chart-svg"> with polyline.series[data-series=requests|thumbs_down|flags]
//                              (one point per bucket) and a .chart-legend
//   #family-table              tbody tr[data-family=NAME]
//   #flag-categories           tbody tr[data-category=NAME]
//   #triage-table              tbody tr.triage-row[data-id=ID] with .triage-reason, .triage-conversation,
//                              .triage-reply, .triage-feedback, select.triage-label (jailbreak, harmful_output,
//                              false_fact, over_refusal, fine), textarea.triage-better (optional better reply),
//                              input.triage-note, checkbox .triage-send ("send to next round"), .triage-save,
//                              .triage-status; a saved row gets class "saved" and [data-label]
//   #triage-refresh, #triage-count, #triage-empty, #triage-error
//   #export-since (date), #export-run, #export-result (table.export-files: tr[data-kind=sft|preferences|
//                              redteam] with the file and its count), #export-error

import { $, api, canAdmin, clear, fmtNumber, fmtPercent, h, showError, startPage } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const LABELS = [
  ["jailbreak", "jailbreak"],
  ["harmful_output", "harmful output"],
  ["false_fact", "false fact"],
  ["over_refusal", "over-refusal"],
  ["fine", "fine"],
];
const SERIES = [
  ["requests", "requests", "#2563eb"],
  ["thumbs_down", "thumbs down", "#dc2626"],
  ["flags", "flags", "#d97706"],
];

// --- metrics ---

function sum(series, key) {
  return (series || []).reduce((acc, b) => acc + (Number(b[key]) || 0), 0);
}

function pct(obj, key) {
  return obj && typeof obj === "object" ? obj[key] : undefined;
}

function ms(x) {
  return x === null || x === undefined ? "–" : `${fmtNumber(x, 0)} ms`;
}

function totalTokens(t) {
  if (t && typeof t === "object") {
    if (t.total !== undefined) return t.total;
    return (Number(t.prompt) || 0) + (Number(t.completion) || 0);
  }
  return t;
}

function cards(m) {
  const series = m.series || [];
  const requests = Number(m.requests) || 0;
  const up = m.thumbs_up ?? sum(series, "thumbs_up");
  const down = m.thumbs_down ?? sum(series, "thumbs_down");
  const flags = m.flags ?? sum(series, "flags");
  const rate = (n, d) => (d ? n / d : null);
  return [
    ["requests", "Requests", fmtNumber(requests)],
    ["tokens", "Tokens", fmtNumber(totalTokens(m.tokens))],
    ["latency_p50", "Latency p50", ms(pct(m.latency_ms, "p50"))],
    ["latency_p95", "Latency p95", ms(pct(m.latency_ms, "p95"))],
    ["latency_p99", "Latency p99", ms(pct(m.latency_ms, "p99"))],
    ["ttft_p50", "Time to first token p50", ms(pct(m.ttft_ms, "p50"))],
    ["ttft_p95", "TTFT p95", ms(pct(m.ttft_ms, "p95"))],
    ["ttft_p99", "TTFT p99", ms(pct(m.ttft_ms, "p99"))],
    ["feedback_rate", "Feedback rate", fmtPercent(m.feedback_rate ?? rate(up + down, requests)),
      `${fmtNumber(up)} up · ${fmtNumber(down)} down`],
    ["thumbs_down_rate", "Thumbs-down share", fmtPercent(m.thumbs_down_rate ?? rate(down, up + down))],
    ["flag_rate", "Flag rate", fmtPercent(m.flag_rate ?? rate(flags, requests)), `${fmtNumber(flags)} flags`],
  ];
}

function renderCards(m) {
  const box = $("#metric-cards");
  clear(box);
  for (const [key, title, value, sub] of cards(m)) {
    box.appendChild(h("div", { className: "metric-card card", dataset: { metric: key } },
      h("div", { className: "metric-title", text: title }),
      h("div", { className: "metric-value", text: value }),
      sub ? h("div", { className: "metric-sub muted", text: sub }) : null));
  }
}

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function shortTime(t) {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t ?? "");
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

// a line chart of the three series over the buckets, drawn as SVG elements (no chart library offline)
function renderChart(series) {
  const box = $("#metrics-chart");
  clear(box);
  if (!series || !series.length) {
    box.appendChild(h("p", { className: "muted", text: "No traffic in this window." }));
    return;
  }
  const W = 720, H = 240, L = 44, R = 12, T = 12, B = 28;
  const max = Math.max(1, ...series.flatMap((b) => SERIES.map(([k]) => Number(b[k]) || 0)));
  const x = (i) => L + (series.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (series.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const root = svg("svg", { class: "chart-svg", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "requests, thumbs down and flags per bucket" });
  for (const f of [0, 0.5, 1]) {
    const v = Math.round(max * f);
    root.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    root.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, String(v)));
  }
  root.appendChild(svg("text", { x: L, y: H - 8, class: "axis" }, shortTime(series[0].t)));
  root.appendChild(svg("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "axis" },
    shortTime(series[series.length - 1].t)));
  for (const [key, name, color] of SERIES) {
    const points = series.map((b, i) => `${x(i).toFixed(1)},${y(Number(b[key]) || 0).toFixed(1)}`).join(" ");
    root.appendChild(svg("polyline", { points, fill: "none", stroke: color, "stroke-width": 2, class: "series",
      "data-series": key }));
    series.forEach((b, i) => {
      const dot = svg("circle", { cx: x(i), cy: y(Number(b[key]) || 0), r: 3, fill: color });
      dot.appendChild(svg("title", {}, `${shortTime(b.t)}: ${Number(b[key]) || 0} ${name}`));
      root.appendChild(dot);
    });
  }
  box.appendChild(root);
  box.appendChild(h("div", { className: "chart-legend" }, SERIES.map(([key, name, color]) => {
    const swatch = svg("svg", { width: 14, height: 4, class: "swatch" });
    swatch.appendChild(svg("rect", { width: 14, height: 4, fill: color }));
    return h("span", { className: "legend-item", dataset: { series: key } }, swatch, ` ${name}`);
  })));
}

function renderFamilies(byFamily) {
  const table = $("#family-table");
  const thead = table.querySelector("thead"), tbody = table.querySelector("tbody");
  clear(thead);
  clear(tbody);
  let rows = [];
  if (Array.isArray(byFamily)) rows = byFamily.map((r) => [r.family ?? r.name ?? "?", r]);
  else if (byFamily && typeof byFamily === "object") rows = Object.entries(byFamily);
  rows = rows.map(([f, v]) => [f, v && typeof v === "object" ? v : { requests: v }]);
  if (!rows.length) {
    tbody.appendChild(h("tr", {}, h("td", { className: "muted", text: "No requests yet." })));
    return;
  }
  const cols = [...new Set(rows.flatMap(([, v]) => Object.keys(v)))].filter((c) => c !== "family" && c !== "name");
  thead.appendChild(h("tr", {}, h("th", { text: "Family" }), cols.map((c) => h("th", { text: c.replace(/_/g, " ") }))));
  for (const [f, v] of rows) {
    tbody.appendChild(h("tr", { dataset: { family: f } }, h("td", { text: f }),
      cols.map((c) => h("td", { text: typeof v[c] === "number" ? fmtNumber(v[c], 2) : v[c] ?? "–" }))));
  }
}

function renderFlagCategories(top) {
  const tbody = $("#flag-categories tbody");
  clear(tbody);
  let rows = [];
  if (Array.isArray(top)) {
    rows = top.map((r) => (Array.isArray(r) ? r : [r.category ?? r.name ?? "?", r.count ?? r.n ?? 0]));
  } else if (top && typeof top === "object") {
    rows = Object.entries(top);
  }
  if (!rows.length) tbody.appendChild(h("tr", {}, h("td", { className: "muted", text: "No flags.", colSpan: 2 })));
  for (const [cat, n] of rows) {
    tbody.appendChild(h("tr", { dataset: { category: cat } }, h("td", { text: cat }), h("td", { text: fmtNumber(n) })));
  }
}

async function loadMetrics() {
  showError($("#metrics-error"), "");
  let m;
  try {
    m = await api(`/api/admin/metrics?hours=${encodeURIComponent($("#metrics-hours").value)}`);
  } catch (e) {
    showError($("#metrics-error"), e);
    return;
  }
  renderCards(m);
  renderChart(m.series || []);
  renderFamilies(m.by_family);
  renderFlagCategories(m.top_flag_categories);
}

// --- triage ---

function textOf(x) {
  if (x === null || x === undefined) return "";
  if (typeof x === "string") return x;
  if (typeof x === "object" && "content" in x) return String(x.content ?? "");
  return JSON.stringify(x);
}

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

// the excerpt: the last few turns before the reply, as plain text
function excerpt(item) {
  let messages = item.messages || (item.conversation && item.conversation.messages) || item.conversation || [];
  if (!Array.isArray(messages)) messages = [];
  const replyId = item.message_id ?? (item.reply && item.reply.id);
  if (replyId !== undefined) {
    const at = messages.findIndex((m) => m.id === replyId);
    if (at >= 0) messages = messages.slice(0, at);
  }
  return h("div", { className: "triage-conversation excerpt" }, messages.slice(-4).map((m) =>
    h("div", { className: `excerpt-line ${m.role}` }, h("strong", { text: `${m.role}: ` }), clip(textOf(m.content), 400))));
}

function triageRow(item) {
  const flagCats = Array.isArray(item.flags) ? item.flags.map((f) => f && f.category) : [];
  const reason = [...new Set([item.source, item.reason, item.category, ...flagCats].filter(Boolean))].join(" · ")
    || "flagged";
  const feedback = item.feedback_reason ?? (item.feedback && item.feedback.reason) ?? item.detail ?? "";
  const label = h("select", { className: "triage-label", attrs: { "aria-label": "Label" } },
    h("option", { value: "", text: "label…" }), LABELS.map(([v, t]) => h("option", { value: v, text: t })));
  if (item.label) label.value = item.label;
  const better = h("textarea", { className: "triage-better", rows: 2, placeholder: "Better reply (optional)" });
  const note = h("input", { className: "triage-note", placeholder: "Note (optional)" });
  const send = h("input", { className: "triage-send", type: "checkbox" });
  const save = h("button", { className: "triage-save primary", text: "Save", attrs: { type: "button" } });
  const status = h("div", { className: "triage-status", attrs: { role: "status" } });
  const row = h("tr", { className: "triage-row", dataset: { id: item.id } },
    h("td", { className: "triage-reason" }, h("span", { className: "pill", text: reason }),
      item.created || item.time ? h("div", { className: "muted small", text: shortTime(item.created || item.time) }) : null),
    h("td", {}, excerpt(item)),
    h("td", { className: "triage-reply excerpt", text: textOf(item.reply ?? item.message) }),
    h("td", { className: "triage-feedback", text: textOf(feedback) || "–" }),
    h("td", { className: "triage-review" }, label, better, note,
      h("label", { className: "check" }, send, " send to next round"), h("div", { className: "row" }, save, status)));
  save.addEventListener("click", async () => {
    if (!label.value) {
      status.textContent = "Pick a label first.";
      status.className = "triage-status error";
      return;
    }
    const body = { label: label.value, send: send.checked };
    if (note.value.trim()) body.note = note.value.trim();
    if (better.value.trim()) body.better_reply = better.value.trim();
    save.disabled = true;
    try {
      await api(`/api/admin/triage/${item.id}`, { method: "POST", body });
    } catch (e) {
      status.textContent = e.message;
      status.className = "triage-status error";
      save.disabled = false;
      return;
    }
    row.classList.add("saved");
    row.dataset.label = label.value;
    status.className = "triage-status ok";
    status.textContent = `Saved as ${label.value.replace(/_/g, " ")}${send.checked ? ", sent to next round" : ""}.`;
    save.disabled = false;
  });
  return row;
}

async function loadTriage() {
  showError($("#triage-error"), "");
  let data;
  try {
    data = await api("/api/admin/triage?status=open");
  } catch (e) {
    showError($("#triage-error"), e);
    return;
  }
  const items = data.data || [];
  const tbody = $("#triage-table tbody");
  clear(tbody);
  items.forEach((item) => tbody.appendChild(triageRow(item)));
  $("#triage-empty").hidden = items.length > 0;
  $("#triage-count").textContent = `${items.length} open`;
}

// --- export ---

async function runExport(ev) {
  ev.preventDefault();
  showError($("#export-error"), "");
  const since = $("#export-since").value;
  const button = $("#export-run");
  button.disabled = true;
  let res;
  try {
    res = await api("/api/admin/export", { method: "POST", body: since ? { since } : {} });
  } catch (e) {
    showError($("#export-error"), e);
    return;
  } finally {
    button.disabled = false;
  }
  const files = res.files || {}, counts = res.counts || {};
  const kinds = [...new Set([...Object.keys(files), ...Object.keys(counts)])];
  const box = $("#export-result");
  clear(box);
  box.appendChild(h("table", { className: "table export-files" },
    h("thead", {}, h("tr", {}, h("th", { text: "Dataset" }), h("th", { text: "File" }), h("th", { text: "Rows" }))),
    h("tbody", {}, kinds.map((k) => h("tr", { dataset: { kind: k } }, h("td", { text: k }),
      h("td", {}, h("code", { text: textOf(files[k]) || "–" })),
      h("td", { text: typeof counts[k] === "object" ? JSON.stringify(counts[k]) : fmtNumber(counts[k]) }))))));
  box.hidden = false;
}

async function main() {
  $("#metrics-hours").addEventListener("change", loadMetrics);
  $("#metrics-refresh").addEventListener("click", loadMetrics);
  $("#triage-refresh").addEventListener("click", loadTriage);
  $("#export-form").addEventListener("submit", runExport);
  await Promise.all([loadMetrics(), loadTriage()]);
}

startPage({ onUser: main, allowed: canAdmin });
