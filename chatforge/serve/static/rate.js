// rate.js: the rater workspace at /rate: one ranking task at a time (a conversation and its K responses),
// ranked best to worst with per-response rank selects, plus which response was best on each criterion.
// Needs the rater or admin role (others see #forbidden).
//
// Stable hooks for tests (besides common.js's #login-*, #topbar, #nav-*, #logout, #forbidden):
//   #criteria-guide            <dl>: dt.criterion[data-criterion=NAME] + dd (the one-line description)
//   #rate-progress             "done / total" of my tasks ([data-done], [data-total]); #rate-progress-bar
//   #agreement-stats           agreement numbers from /api/rate/progress (dl, dt/dd per statistic)
//   #rater-table-wrap          table.rater-table: one row per rater
//   #rate-empty                shown when GET /api/rate/task gives {task: null}
//   #rate-task                 the task form ([data-task-id]), hidden when there is none
//     #task-conversation       .task-message.user / .task-message.assistant
//     #task-responses          .task-response[data-index=i] (0-based), with .response-body (Markdown) and
//                              select.rank-select[data-index=i]: values "" or "1".."K" (1 = best)
//     #criteria-selects        select.criterion-select[data-criterion=NAME]: "" (no clear winner) or "0".."K-1"
//     #rate-submit             validates the ranks are a permutation of 1..K, then POSTs
//                              {ranking: [indices best→worst], criteria: {name: index}}
//     #rate-error              why it was not sent
//   #rate-status               after a submit: "Saved: N comparisons stored."

import { $, api, canRate, clear, fmtNumber, fmtPercent, h, showError, startPage } from "./common.js";
import { renderMarkdown } from "./markdown.js";

// shown until the server sends its own criteria (with every task, and beside {task: null})
const DEFAULT_CRITERIA = [
  { name: "helpful", text: "Does what the user asked, correctly and completely." },
  { name: "truthful", text: "Invents nothing: admits when it does not know instead of making facts up." },
  { name: "harmless", text: "Refuses harmful requests, is never toxic, and does not refuse safe ones." },
  { name: "asks_when_unclear", text: "Asks a clarifying question when the request is ambiguous." },
  { name: "honest_identity", text: "Honest about being an AI and about what it can and cannot do." },
];

let task = null;

function criteriaOf(t) {
  const list = (t && Array.isArray(t.criteria) && t.criteria.length) ? t.criteria : DEFAULT_CRITERIA;
  return list.map((c) => (typeof c === "string" ? { name: c, text: "" } : { name: c.name, text: c.text || "" }));
}

function label(name) {
  return name.replace(/_/g, " ");
}

function renderGuide(criteria) {
  const dl = $("#criteria-guide");
  clear(dl);
  for (const c of criteria) {
    dl.append(h("dt", { className: "criterion", text: label(c.name), dataset: { criterion: c.name } }),
      h("dd", { text: c.text }));
  }
}

// --- progress ---

async function loadProgress() {
  let p;
  try {
    p = await api("/api/rate/progress");
  } catch (e) {
    showError($("#page-error"), e);
    return;
  }
  const mine = p.mine || {};
  const done = Number(mine.done || 0), total = Number(mine.total || 0);
  const el = $("#rate-progress");
  el.textContent = `${fmtNumber(done)} / ${fmtNumber(total)} done`;
  el.dataset.done = done;
  el.dataset.total = total;
  $("#rate-progress-bar .progress-fill").style.width = `${total ? Math.min(100, (100 * done) / total) : 0}%`;
  renderAgreement(p.agreement);
  renderRaters(p.raters);
}

function fmtStat(v) {
  if (typeof v === "number") return v >= 0 && v <= 1 && !Number.isInteger(v) ? fmtPercent(v) : fmtNumber(v, 3);
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${label(k)} ${fmtStat(x)}`).join(", ");
  return String(v);
}

function renderAgreement(agreement) {
  const box = $("#agreement-stats");
  clear(box);
  const entries = agreement && typeof agreement === "object" ? Object.entries(agreement) : [];
  if (!entries.length) {
    box.textContent = "Not enough overlapping ratings yet.";
    return;
  }
  const dl = h("dl", { className: "stats" });
  for (const [k, v] of entries) dl.append(h("dt", { text: label(k) }), h("dd", { text: fmtStat(v), dataset: { stat: k } }));
  box.appendChild(dl);
}

function renderRaters(raters) {
  const wrap = $("#rater-table-wrap");
  clear(wrap);
  if (!Array.isArray(raters) || !raters.length) {
    wrap.appendChild(h("p", { className: "muted", text: "No ratings yet." }));
    return;
  }
  const rows = raters.map((r) => (r && typeof r === "object" ? r : { rater: r }));
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  wrap.appendChild(h("table", { className: "table rater-table" },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { text: label(c) })))),
    h("tbody", {}, rows.map((r) => h("tr", {}, cols.map((c) => h("td", { text: fmtStat(r[c]) })))))));
}

// --- the task ---

async function loadTask() {
  showError($("#rate-error"), "");
  let data;
  try {
    data = await api("/api/rate/task");
  } catch (e) {
    showError($("#page-error"), e);
    return;
  }
  task = data.task || null;
  if (!task && Array.isArray(data.criteria) && data.criteria.length) renderGuide(criteriaOf(data));
  $("#rate-empty").hidden = !!task;
  $("#rate-task").hidden = !task;
  if (!task) return;
  renderTask(task);
}

function renderTask(t) {
  const form = $("#rate-task");
  form.dataset.taskId = t.id;
  const criteria = criteriaOf(t);
  renderGuide(criteria);

  const conv = $("#task-conversation");
  clear(conv);
  const messages = t.messages || (t.prompt && t.prompt.messages) || [];
  for (const m of messages) {
    const role = m.role === "user" ? "user" : m.role === "system" ? "system" : "assistant";
    conv.appendChild(h("div", { className: `task-message ${role}` },
      h("div", { className: "message-role", text: role === "user" ? "User" : role === "system" ? "System" : "Assistant" }),
      h("div", { className: "message-body" }, renderMarkdown(m.content))));
  }

  const responses = t.responses || [];
  const k = responses.length;
  const box = $("#task-responses");
  clear(box);
  responses.forEach((text, i) => {
    const select = h("select", {
      className: "rank-select", dataset: { index: i }, attrs: { "aria-label": `Rank of response ${i + 1}` },
      on: { change: markDuplicates },
    }, h("option", { value: "", text: "rank…" }),
    Array.from({ length: k }, (_, r) => h("option", { value: String(r + 1), text: `${r + 1}${r === 0 ? " (best)" : r === k - 1 ? " (worst)" : ""}` })));
    box.appendChild(h("div", { className: "task-response card", dataset: { index: i } },
      h("div", { className: "response-head" }, h("strong", { text: `Response ${i + 1}` }),
        h("label", { className: "rank-label" }, "Rank ", select)),
      h("div", { className: "response-body message-body" }, renderMarkdown(text))));
  });

  const sel = $("#criteria-selects");
  clear(sel);
  for (const c of criteria) {
    const select = h("select", { className: "criterion-select", dataset: { criterion: c.name } },
      h("option", { value: "", text: "no clear winner / not relevant" }),
      responses.map((_, i) => h("option", { value: String(i), text: `Response ${i + 1}` })));
    sel.appendChild(h("label", { className: "criterion-row", title: c.text },
      h("span", { className: "criterion-name", text: label(c.name) }), select));
  }
  $("#rate-submit").disabled = false;
  window.scrollTo(0, 0);
}

function rankSelects() {
  return [...document.querySelectorAll("#task-responses .rank-select")];
}

function markDuplicates() {
  const selects = rankSelects();
  const counts = {};
  selects.forEach((s) => { if (s.value) counts[s.value] = (counts[s.value] || 0) + 1; });
  selects.forEach((s) => s.classList.toggle("invalid", !!s.value && counts[s.value] > 1));
}

// the ranks as response indices best→worst, or an error message when they are not a permutation of 1..K
function readRanking() {
  const selects = rankSelects();
  const k = selects.length;
  const ranks = selects.map((s) => Number(s.value));
  if (selects.some((s) => !s.value)) return { error: `Rank every response (1 to ${k}).` };
  const sorted = [...ranks].sort((a, b) => a - b);
  if (sorted.some((r, i) => r !== i + 1)) return { error: `Give each response a different rank from 1 to ${k}.` };
  return { ranking: ranks.map((r, i) => [r, i]).sort((a, b) => a[0] - b[0]).map(([, i]) => i) };
}

async function submit(ev) {
  ev.preventDefault();
  if (!task) return;
  const { ranking, error } = readRanking();
  if (error) {
    showError($("#rate-error"), error);
    return;
  }
  showError($("#rate-error"), "");
  const criteria = {};
  document.querySelectorAll("#criteria-selects .criterion-select").forEach((s) => {
    if (s.value !== "") criteria[s.dataset.criterion] = Number(s.value);
  });
  const button = $("#rate-submit");
  button.disabled = true;
  let res;
  try {
    res = await api(`/api/rate/task/${task.id}`, { method: "POST", body: { ranking, criteria } });
  } catch (e) {
    showError($("#rate-error"), e);
    button.disabled = false;
    return;
  }
  const stored = Array.isArray(res.stored) ? res.stored.length : res.stored;
  await Promise.all([loadTask(), loadProgress()]);
  const status = $("#rate-status");
  status.textContent = `Saved: ${fmtNumber(stored ?? 0)} comparisons stored.`;
  status.hidden = false;
}

async function main() {
  renderGuide(DEFAULT_CRITERIA);
  $("#rate-task").addEventListener("submit", submit);
  await Promise.all([loadTask(), loadProgress()]);
}

startPage({ onUser: main, allowed: canRate });
