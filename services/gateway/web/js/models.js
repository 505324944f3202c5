// Models page: GET /v1/models (list) and GET /v1/models/{id} (manifest, metrics, lineage),
// with the sample grid from GET /v1/models/{id}/samples.png (fetched as a blob so a Bearer
// token works).

import { getJson, objectUrl } from "./api.js";
import { reportList } from "./reports.js";
import { arrayTable, clear, el, fmtTime, hideNotice, renderJson, showError } from "./ui.js";

let list, detail, errorBox, selected = null, sampleUrl = null;

function modelId(m) {
  return m.id || m.model_id;
}

function linkFor(id) {
  if (typeof id !== "string") return String(id);
  if (/^(gdgan|acgan)/.test(id)) return el("a", { href: `#/models/${encodeURIComponent(id)}` }, id);
  return el("code", {}, id);
}

async function loadList() {
  try {
    const body = await getJson("/v1/models");
    const items = Array.isArray(body) ? body : body.models || body.items || [];
    clear(list);
    const sorted = [...items]; // the API lists newest first
    for (const m of sorted) {
      const id = modelId(m);
      const a = el("a", { href: `#/models/${encodeURIComponent(id)}` }, el("span", { class: "kind" }, m.kind || "model"), el("code", {}, id), el("span", { class: "muted small" }, fmtTime(m.created_at ?? m.created)));
      if (id === selected) a.setAttribute("aria-current", "true");
      list.append(el("li", {}, a));
    }
    document.getElementById("models-empty").hidden = items.length > 0;
    hideNotice(errorBox);
    return sorted;
  } catch (err) {
    showError(errorBox, err, { retry: loadList });
    return [];
  }
}

function section(title, ...content) {
  return el("section", { class: "detail-section" }, el("h3", {}, title), ...content);
}

function lineage(m) {
  const man = m.manifest || m;
  const meta = man.meta || {};
  const cfg = man.config || {};
  const rows = [];
  const dataset = m.dataset_id ?? meta.dataset_id ?? cfg.dataset_id;
  const split = meta.split_seed ?? cfg.split_seed ?? m.split_seed;
  if (dataset) rows.push(el("li", {}, "Dataset: ", el("code", {}, String(dataset))));
  if (split != null) rows.push(el("li", {}, `Split seed: ${split}`));
  if (m.preset ?? meta.preset) rows.push(el("li", {}, `Preset: ${m.preset ?? meta.preset}`));
  const parents = new Set((man.parents || []).map((p) => (typeof p === "string" ? p : p.id)));
  // lineage: ancestors nearest first, [{id, kind, created}]
  const lin = Array.isArray(m.lineage) ? m.lineage : [];
  const seen = new Set();
  for (const a of lin) {
    const aid = typeof a === "string" ? a : a.id;
    if (aid === dataset) continue; // already listed as the dataset
    seen.add(aid);
    const rel = parents.has(aid) ? "Parent" : "Ancestor";
    rows.push(el("li", {}, `${rel}: `, linkFor(aid), a.kind ? ` (${a.kind})` : ""));
  }
  for (const p of parents) if (!seen.has(p)) rows.push(el("li", {}, "Parent: ", linkFor(p)));
  return rows.length ? el("ul", { class: "lineage" }, rows) : el("p", { class: "muted" }, "No lineage recorded.");
}

/** The harness curve (PNG) and the last point's figures as a small table. */
function qualityCurve(id, last) {
  const fig = el("figure", { class: "samples" }, el("p", { class: "muted" }, "Loading the quality curve…"));
  objectUrl(`/v1/models/${encodeURIComponent(id)}/quality_curve.png`)
    .then((url) => clear(fig).append(el("img", { src: url, alt: `Quality over training of ${id}`, id: "model-quality-curve" }),
      el("figcaption", {}, "Judge-measured quality of the EMA weights; dotted: real test images")))
    .catch((err) => clear(fig).append(el("p", { class: "muted" }, `No quality curve: ${err.message}`)));
  const names = { relative_fd: "relative FD", precision: "precision", recall: "recall", gender_accuracy: "gender accuracy",
    view_accuracy: "view accuracy", finding_auc_paired: "finding AUC (paired)", finding_auc_independent: "finding AUC (independent)",
    ctr_share_pos: "CTR>0.5, requested +", ctr_share_neg: "CTR>0.5, requested −" };
  const rows = Object.entries(names).filter(([k]) => last && last[k] != null).map(([k, label]) => [label, Number(last[k]).toFixed(3)]);
  const table = rows.length
    ? el("table", { class: "small" }, el("caption", {}, `At step ${last.step}`),
      el("tbody", {}, rows.map(([a, b]) => el("tr", {}, el("td", {}, a), el("td", {}, b)))))
    : null;
  return el("div", {}, fig, table);
}

async function showModel(id) {
  selected = id;
  clear(detail).append(el("p", { class: "muted" }, `Loading ${id}…`));
  list.querySelectorAll("a").forEach((a) => a.toggleAttribute("aria-current", a.getAttribute("href") === `#/models/${encodeURIComponent(id)}`));
  let m;
  try {
    m = await getJson(`/v1/models/${encodeURIComponent(id)}`);
  } catch (err) {
    clear(detail);
    showError(errorBox, err, { retry: () => showModel(id) });
    return;
  }
  if (selected !== id) return;
  const man = m.manifest || m;
  const kind = m.kind || man.kind || "model";
  clear(detail);
  detail.append(
    el("header", { class: "detail-head" },
      el("h2", {}, el("span", { class: "kind" }, kind), " ", el("code", {}, id)),
      el("p", { class: "muted" }, `created ${fmtTime(man.created_at ?? man.created ?? m.created)}`),
      /^(gdgan|acgan)$/.test(kind) ? el("a", { class: "button", href: `#/generate/${encodeURIComponent(id)}` }, "Generate with this model") : null,
    ),
  );
  const fig = el("figure", { class: "samples" }, el("p", { class: "muted" }, "Loading samples…"));
  detail.append(section("Samples", fig));
  objectUrl(`/v1/models/${encodeURIComponent(id)}/samples.png`)
    .then((url) => {
      if (sampleUrl) URL.revokeObjectURL(sampleUrl);
      sampleUrl = url;
      clear(fig).append(el("img", { src: url, alt: `Sample grid of ${id}`, id: "model-samples" }), el("figcaption", {}, "Fixed-seed samples with their labels"));
    })
    .catch((err) => clear(fig).append(el("p", { class: "muted" }, `No sample grid: ${err.message}`)));
  const files = m.files || man.files || {};
  if ("quality_curve.png" in files) detail.append(section("Quality over training", qualityCurve(id, (man.meta || m.meta || {}).quality)));
  detail.append(section("Lineage", lineage(m)));
  const metrics = m.metrics ?? man.metrics ?? (man.meta || {}).metrics;
  const fidBox = el("div", {}, el("p", { class: "muted" }, "Looking for evaluation reports that used this model…"));
  detail.append(section("Fidelity metrics", metrics && Object.keys(metrics).length ? renderJson(metrics) : null, fidBox));
  fidelityFromReports(id).then((nodes) => {
    if (selected === id) clear(fidBox).append(...nodes);
  });
  const losses = (man.meta || {}).final_losses ?? (man.meta || {}).losses ?? m.final_losses;
  if (losses) detail.append(section("Final losses", lossTable(losses)));
  const cfg = man.config || m.config;
  if (cfg) {
    detail.append(el("details", { class: "detail-section" }, el("summary", {}, "Configuration (model and training settings)"),
      typeof cfg === "object" ? renderJson(cfg) : el("pre", {}, String(cfg))));
  }
  const mix = (man.meta || {}).label_mix;
  if (mix) detail.append(el("details", { class: "detail-section" }, el("summary", {}, "Label mix of the training positives"), renderJson(mix)));
  detail.append(el("details", { class: "detail-section" }, el("summary", {}, "Full manifest (JSON)"), el("pre", { class: "json" }, JSON.stringify(m, null, 2))));
}

/**
 * A model's fidelity metrics live in the evaluation reports that sampled it (label fidelity,
 * FID/KID, memorisation per image set): find the newest few reports whose image sets came from
 * this model and show that model's rows, with a link to the whole report.
 */
/** Which image set of a report ("gdgan", "acgan") came from this model, if any. */
function setKeyOf(rep, id) {
  const q = rep.quality || {};
  const bySource = Object.entries(q.sets || {}).find(([, v]) => v && v.source === id)?.[0];
  if (bySource) return bySource;
  for (const r of rep.lineage?.repeats || []) {
    const hit = Object.entries(r.models || {}).find(([, v]) => v === id)?.[0];
    if (hit) return hit;
  }
  const plan = rep.plan || {};
  if (plan.gdgan_model === id) return "gdgan";
  if (plan.acgan_model === id) return "acgan";
  return null;
}

async function fidelityFromReports(id, maxReports = 6) {
  let reports;
  try {
    reports = (await reportList()).slice(0, maxReports);
  } catch (err) {
    return [el("p", { class: "muted" }, `Reports unavailable: ${err.message}`)];
  }
  for (const r of reports) {
    let rep;
    try {
      rep = await getJson(`/v1/reports/${encodeURIComponent(r.id)}`);
    } catch {
      continue;
    }
    const q = rep.quality || {};
    const key = setKeyOf(rep, id);
    if (!key || !q.sets?.[key]) continue;
    const row = {};
    const lf = q.label_fidelity?.[key];
    if (lf) Object.assign(row, { "finding AUC (label fidelity)": lf.finding_auc, "gender accuracy": lf.gender_accuracy, "view accuracy": lf.view_accuracy });
    const fk = q.fid_kid?.domain?.vs_real?.[key];
    if (fk) Object.assign(row, { "FID (domain features)": fk.fid, "KID (domain features)": fk.kid?.mean });
    const mem = q.memorisation?.[key]?.feature;
    if (mem) Object.assign(row, { "exact copies of training images": mem.n_exact_copies, "flagged as near-copies": mem.n_flagged });
    const inc = q.inception_score?.domain?.scores?.[key] ?? q.inception_score?.imagenet?.scores?.[key];
    if (inc) row["inception score"] = inc.mean;
    return [
      el("p", {}, "From report ", el("a", { href: `#/reports/${encodeURIComponent(r.id)}` }, r.id), ` (${key.toUpperCase()} image set, ${q.sets[key].n} images):`),
      renderJson(row),
    ];
  }
  return [el("p", { class: "muted" }, "No evaluation report has sampled this model yet: evaluate it on the Jobs page.")];
}

/** Final losses as one table: a column per stage when the model has stages (GDGAN bundle). */
function lossTable(losses) {
  const stages = Object.entries(losses).filter(([, v]) => v && typeof v === "object");
  if (!stages.length) return renderJson(losses);
  const names = [];
  for (const [, v] of stages) for (const k of Object.keys(v)) if (!names.includes(k)) names.push(k);
  return arrayTable(names.map((k) => Object.fromEntries([["loss", k], ...stages.map(([st, v]) => [st, v[k] ?? null])])));
}

export function init() {
  list = document.getElementById("models-list");
  detail = document.getElementById("model-detail");
  errorBox = document.getElementById("models-error");
}

export async function show(params) {
  const items = await loadList();
  const id = params[0] || (items[0] && modelId(items[0]));
  if (id) showModel(id);
  else clear(detail);
}

export function hide() {}
