// Reports page: GET /v1/reports/{id} (JSON) rendered as tables next to the paper's figures,
// plus the service's own HTML report (GET /v1/reports/{id}/html) in a sandboxed frame.
// Report ids come from GET /v1/reports when the gateway offers it, else from the results of
// finished evaluation jobs (GET /v1/jobs), else typed in.

import { getJson, request } from "./api.js";
import { PAPER } from "./labels.js";
import { clear, el, fmtNumber, fmtTime, hideNotice, renderJson, showError } from "./ui.js";

let list, detail, errorBox, selected = null;

function findReportIds(value, out = new Set()) {
  if (typeof value === "string" && value.startsWith("report-")) out.add(value);
  else if (value && typeof value === "object") for (const v of Object.values(value)) findReportIds(v, out);
  return out;
}

async function reportList() {
  try {
    const body = await getJson("/v1/reports");
    const items = Array.isArray(body) ? body : body.reports || body.items || [];
    return items.map((r) => (typeof r === "string" ? { id: r } : { id: r.id || r.report_id, created_at: r.created_at ?? r.created }));
  } catch (err) {
    if (err.status === 401) throw err;
  }
  const body = await getJson("/v1/jobs");
  const jobs = Array.isArray(body) ? body : body.jobs || body.items || [];
  const out = []; // jobs come newest first
  for (const j of jobs) for (const id of findReportIds(j.result)) out.push({ id, created_at: j.finished ?? j.updated ?? j.created });
  return out;
}

async function loadList() {
  try {
    const items = await reportList();
    clear(list);
    for (const r of items) {
      const a = el("a", { href: `#/reports/${encodeURIComponent(r.id)}` }, el("code", {}, r.id), el("span", { class: "muted small" }, fmtTime(r.created_at)));
      list.append(el("li", {}, a));
    }
    document.getElementById("reports-empty").hidden = items.length > 0;
    return items;
  } catch (err) {
    showError(errorBox, err, { retry: loadList });
    return [];
  }
}

const STRATEGY_ALIASES = { none: ["none", "baseline", "no_augmentation"], undersample: ["undersample", "under", "undersampling"], oversample: ["oversample", "over", "oversampling"], acgan: ["acgan", "+acgan"], gdgan: ["gdgan", "+gdgan"] };

function canonicalStrategy(name) {
  const n = String(name).toLowerCase();
  for (const [k, names] of Object.entries(STRATEGY_ALIASES)) if (names.includes(n)) return k;
  return null;
}

/** Find per-strategy AUC summaries in a report, whatever nesting the evaluator chose. */
function aucRows(report) {
  const cands = [report.auc, report.table1, report.strategies, report.summary?.auc, report.results];
  for (const c of cands) {
    if (!c) continue;
    const entries = Array.isArray(c) ? c.map((r) => [r.strategy ?? r.name, r]) : Object.entries(c);
    const rows = [];
    for (const [name, v] of entries) {
      const key = canonicalStrategy(name);
      if (!key) continue;
      const mean = typeof v === "number" ? v : v.auc_mean ?? v.mean ?? v.auc?.mean ?? (typeof v.auc === "number" ? v.auc : null);
      const sd = typeof v === "object" ? v.auc_sd ?? v.sd ?? v.std ?? v.auc?.sd ?? null : null;
      const total = typeof v === "object" ? v.n_total ?? v.total ?? v.counts?.total ?? null : null;
      const pos = typeof v === "object" ? v.n_positive ?? v.positive ?? v.counts?.positive ?? null : null;
      rows.push({ name, key, mean, sd, total, pos });
    }
    if (rows.length) return rows;
  }
  return [];
}

function pm(mean, sd) {
  if (mean == null) return "—";
  return sd != null ? `${fmtNumber(mean)} ± ${fmtNumber(sd)}` : fmtNumber(mean);
}

function paperTable(report) {
  const rows = aucRows(report);
  const table = el("table", { class: "data", id: "report-auc-table" });
  table.append(el("caption", {}, "Table 1 — ROC AUC on the test split (mean ± SD over splits), this run vs the paper"));
  table.append(el("thead", {}, el("tr", {}, ["Training set", "Images (total / positive)", "AUC — this run", "AUC — paper"].map((h) => el("th", { scope: "col" }, h)))));
  const tbody = el("tbody");
  const keys = rows.length ? rows : Object.keys(PAPER.auc).map((k) => ({ name: k, key: k }));
  for (const r of keys) {
    const p = PAPER.auc[r.key];
    tbody.append(el("tr", {},
      el("th", { scope: "row" }, r.name),
      el("td", {}, r.total != null ? `${fmtNumber(r.total)} / ${fmtNumber(r.pos)}` : "—"),
      el("td", {}, pm(r.mean, r.sd)),
      el("td", {}, p ? pm(p.mean, p.sd) : "—")));
  }
  table.append(tbody);
  const is = report.inception ?? report.inception_score ?? report.diversity ?? null;
  const isTable = el("table", { class: "data" });
  isTable.append(el("caption", {}, "Diversity — inception score, this run vs the paper"));
  isTable.append(el("thead", {}, el("tr", {}, ["Images", "IS — this run", "IS — paper"].map((h) => el("th", { scope: "col" }, h)))));
  const isBody = el("tbody");
  for (const [k, paper] of Object.entries(PAPER.inception)) {
    const v = is && is[k] != null ? is[k] : null;
    const ours = v == null ? "—" : typeof v === "number" ? fmtNumber(v) : pm(v.mean, v.sd ?? v.std);
    isBody.append(el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, ours), el("td", {}, fmtNumber(paper))));
  }
  isTable.append(isBody);
  return el("section", { class: "detail-section" }, el("h3", {}, "Compared with Koga et al. (2018)"), el("div", { class: "table-wrap" }, table), el("div", { class: "table-wrap" }, isTable));
}

async function showReport(id) {
  selected = id;
  hideNotice(errorBox);
  clear(detail).append(el("p", { class: "muted" }, `Loading ${id}…`));
  let report;
  try {
    report = await getJson(`/v1/reports/${encodeURIComponent(id)}`);
  } catch (err) {
    clear(detail);
    showError(errorBox, err, { retry: () => showReport(id) });
    return;
  }
  if (selected !== id) return;
  clear(detail);
  const body = report.report && typeof report.report === "object" ? report.report : report;
  detail.append(el("header", { class: "detail-head" }, el("h2", {}, "Report ", el("code", {}, id)), el("p", { class: "muted" }, body.finding ? `Finding: ${body.finding}` : "")));
  detail.append(paperTable(body));
  const frameBox = el("section", { class: "detail-section" }, el("h3", {}, "Full report"), el("p", { class: "muted" }, "Loading the HTML report…"));
  detail.append(frameBox);
  request(`/v1/reports/${encodeURIComponent(id)}/html`, { accept: "text/html" })
    .then((r) => r.text())
    .then((html) => {
      // sandbox without scripts: the report is data, never code running in this page.
      const frame = el("iframe", { title: `Evaluation report ${id}`, sandbox: "", class: "report-frame", id: "report-frame" });
      frame.srcdoc = html;
      clear(frameBox).append(el("h3", {}, "Full report (tables, ROC curves, samples)"), frame);
    })
    .catch((err) => clear(frameBox).append(el("h3", {}, "Full report"), el("p", { class: "muted" }, `The HTML report is not available: ${err.message}`)));
  detail.append(el("details", { class: "detail-section" }, el("summary", {}, "All report data"), renderJson(body)));
}

export function init() {
  list = document.getElementById("reports-list");
  detail = document.getElementById("report-detail");
  errorBox = document.getElementById("reports-error");
  const form = document.getElementById("report-open-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const id = form.elements.report_id.value.trim();
    if (id) location.hash = `#/reports/${encodeURIComponent(id)}`;
  });
}

export async function show(params) {
  const items = await loadList();
  const id = params[0] || (items.length ? items[0].id : null);
  if (id) showReport(id);
  else clear(detail).append(el("p", { class: "muted" }, "Pick a report, or open one by id."));
}

export function hide() {}
