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

/** Report ids, newest first: GET /v1/reports, or (if that fails) the results of evaluation jobs. */
export async function reportList() {
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
const STRATEGY_LABELS = { none: "None (as is)", undersample: "Undersampling", oversample: "Oversampling", acgan: "+ ACGAN images", gdgan: "+ GDGAN images" };

function canonicalStrategy(name) {
  const n = String(name).toLowerCase();
  for (const [k, names] of Object.entries(STRATEGY_ALIASES)) if (names.includes(n)) return k;
  return null;
}

/** Per-strategy AUC rows (report.table2.rows: auc_mean, auc_sd, counts_per_repeat). */
function aucRows(report) {
  const src = report.table2?.rows ?? report.auc ?? null;
  if (!src) return [];
  const rows = [];
  for (const [name, v] of Object.entries(src)) {
    const key = canonicalStrategy(name);
    if (!key) continue;
    const c = (v.counts_per_repeat && v.counts_per_repeat[0]) || v.counts_mean || {};
    rows.push({
      key,
      name: STRATEGY_LABELS[key],
      mean: v.auc_mean ?? v.mean ?? null,
      sd: v.auc_sd ?? v.sd ?? null,
      total: c.total ?? null,
      pos: c.positives ?? null,
      ci: v.pooled_ci ?? null,
    });
  }
  const order = Object.keys(STRATEGY_LABELS); // the paper's row order
  return rows.sort((a, b) => order.indexOf(a.key) - order.indexOf(b.key));
}

function pm(mean, sd) {
  if (mean == null) return "—";
  return sd != null ? `${fmtNumber(mean)} ± ${fmtNumber(sd)}` : fmtNumber(mean);
}

function table(caption, header, rows, id = null) {
  const t = el("table", { class: "data", id });
  t.append(el("caption", {}, caption));
  t.append(el("thead", {}, el("tr", {}, header.map((h) => el("th", { scope: "col" }, h)))));
  t.append(el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => (i === 0 ? el("th", { scope: "row" }, c) : el("td", {}, c)))))));
  return el("div", { class: "table-wrap" }, t);
}

function paperTable2(report) {
  const paper = report.paper?.table2 || {};
  const rows = aucRows(report).map((r) => {
    const p = paper[r.key] || (PAPER.auc[r.key] ? { auc: PAPER.auc[r.key].mean, sd: PAPER.auc[r.key].sd } : null);
    return [
      r.name,
      r.total != null ? `${fmtNumber(r.total)} / ${fmtNumber(r.pos)}` : "—",
      pm(r.mean, r.sd),
      r.ci ? `[${fmtNumber(r.ci.lo)}, ${fmtNumber(r.ci.hi)}]` : "—",
      p ? pm(p.auc, p.sd) : "—",
      p && p.total ? `${fmtNumber(p.total)} / ${fmtNumber(p.positives)}` : "—",
    ];
  });
  return table(
    `Table 2 — ${report.finding || "finding"} classifier, ROC AUC on the test split (mean ± SD over ${report.plan?.repeats ?? "the"} split(s)), next to the paper`,
    ["Training set", "Images (total / positive)", "AUC — this run", "95 % CI (pooled)", "AUC — paper", "Paper images"],
    rows,
    "report-auc-table",
  );
}

function paperTable1(report) {
  const inc = report.quality?.inception_score;
  if (!inc) return null;
  const sec = inc.imagenet?.available ? inc.imagenet : inc.domain;
  if (!sec || !sec.scores) return null;
  const paper = report.paper?.table1 || {};
  const rows = Object.entries(sec.scores).map(([name, sc]) => [
    name === "real" ? "Real" : name.toUpperCase(),
    pm(sc.mean, sc.sd),
    `${fmtNumber(sc.n_images)} / ${fmtNumber(sc.n_splits)}`,
    fmtNumber(paper[name]?.mean ?? PAPER.inception[name] ?? null),
  ]);
  const net = sec.network || "ImageNet Inception-v3";
  return el("div", {},
    table("Table 1 — diversity: inception score (mean ± SD over splits)", ["Images", "IS — this run", "images / splits", "IS — paper"], rows, "report-is-table"),
    el("p", { class: "muted small" }, `Network: ${net}.`),
  );
}

function fidelityTables(report) {
  const q = report.quality || {};
  const out = [];
  const lf = q.label_fidelity;
  if (lf) {
    const sets = Object.entries(lf).filter(([, v]) => v && typeof v === "object");
    out.push(table(
      "Label fidelity — does a real-trained classifier read the requested labels back?",
      ["Images", "Finding AUC", "Gender accuracy", "View accuracy", "positive / negative"],
      sets.map(([k, v]) => [k, fmtNumber(v.finding_auc), fmtNumber(v.gender_accuracy), fmtNumber(v.view_accuracy), `${v.n_positive ?? "—"} / ${v.n_negative ?? "—"}`]),
    ));
  }
  const fk = q.fid_kid?.domain?.vs_real;
  if (fk) {
    out.push(table(
      "FID / KID against real test images (domain network features)",
      ["Images", "FID", "KID (mean ± SD)", "real / synthetic"],
      Object.entries(fk).map(([k, v]) => [k, fmtNumber(v.fid), pm(v.kid?.mean, v.kid?.sd), `${v.n_real} / ${v.n_synthetic}`]),
    ));
  }
  const mem = q.memorisation;
  if (mem) {
    const rows = [];
    for (const [k, v] of Object.entries(mem)) {
      const f = v && (v.feature || v.pixel || v);
      if (!f || typeof f !== "object" || f.n_synthetic == null) continue;
      rows.push([k, fmtNumber(f.n_synthetic), fmtNumber(f.n_exact_copies ?? 0), fmtNumber(f.n_flagged ?? 0), fmtNumber(f.synthetic_to_train?.min), fmtNumber(f.test_to_train?.median)]);
    }
    if (rows.length) {
      out.push(table(
        "Memorisation — nearest training image of each synthetic image",
        ["Images", "checked", "exact copies", "flagged", "min distance", "real test → train (median)"],
        rows,
      ));
    }
  }
  return out;
}

/**
 * Show the service's self-contained HTML report inside this page. It is parsed into an inert
 * document, stripped of anything active (scripts, frames, event handlers, javascript: URLs) and
 * placed in a shadow root so its CSS cannot restyle the app: the report is data, never code.
 * The page's Content-Security-Policy allows no inline style, so the report's <style> blocks
 * become constructed style sheets of the shadow root and its style="" attributes are applied
 * through the CSSOM: both are data handed to the style engine, never parsed as markup here.
 */
export function embedReport(host, html) {
  const sheets = [":host { display: block; } .report-body { font: 14px/1.45 system-ui, sans-serif; color: #1b1f24; overflow-x: auto; } img { max-width: 100%; }"];
  // <style> blocks are taken out as text before parsing: a parsed document inherits the page's
  // CSP, which would refuse (and report) them there.
  const markup = String(html).replace(/<style\b[^>]*>([\s\S]*?)<\/style\s*>/gi, (_, css) => {
    sheets.push(css);
    return "";
  });
  const doc = new DOMParser().parseFromString(markup, "text/html");
  doc.querySelectorAll("script, iframe, object, embed, link, meta, base, form").forEach((n) => n.remove());
  for (const node of doc.querySelectorAll("*")) {
    for (const attr of [...node.attributes]) {
      const v = attr.value.trim().toLowerCase();
      if (attr.name.startsWith("on") || ((attr.name === "href" || attr.name === "src") && v.startsWith("javascript:"))) {
        node.removeAttribute(attr.name);
      }
    }
  }
  const root = host.shadowRoot || host.attachShadow({ mode: "open" });
  while (root.firstChild) root.firstChild.remove();
  doc.querySelectorAll("style").forEach((st) => {
    sheets.push(st.textContent || "");
    st.remove();
  });
  root.adoptedStyleSheets = sheets.map((css) => {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    return sheet;
  });
  const inline = [];
  doc.querySelectorAll("[style]").forEach((node) => {
    node.dataset.reportStyle = String(inline.push(node.getAttribute("style")) - 1);
    node.removeAttribute("style");
  });
  const body = document.createElement("div");
  body.className = "report-body";
  body.tabIndex = 0; // it scrolls sideways when a table is wide: keyboard users must reach it (axe)
  for (const child of [...doc.body.childNodes]) body.append(document.importNode(child, true));
  body.querySelectorAll("[data-report-style]").forEach((node) => {
    node.style.cssText = inline[Number(node.dataset.reportStyle)] || "";
    delete node.dataset.reportStyle;
  });
  root.append(body);
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
  detail.append(
    el("section", { class: "detail-section" }, el("h3", {}, "Compared with Koga et al. (2018)"), paperTable2(body), paperTable1(body)),
  );
  const fid = fidelityTables(body);
  if (fid.length) detail.append(el("section", { class: "detail-section" }, el("h3", {}, "Fidelity and memorisation"), ...fid));
  const frameBox = el("section", { class: "detail-section" }, el("h3", {}, "Full report"), el("p", { class: "muted" }, "Loading the HTML report…"));
  detail.append(frameBox);
  request(`/v1/reports/${encodeURIComponent(id)}/html`, { accept: "text/html" })
    .then((r) => r.text())
    .then((html) => {
      const host = el("div", { class: "report-embed", id: "report-embed", role: "region", "aria-label": `Evaluation report ${id}` });
      embedReport(host, html);
      clear(frameBox).append(el("h3", {}, "Full report (tables, ROC curves, samples)"), host);
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
