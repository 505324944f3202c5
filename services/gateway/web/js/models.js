// Models page: GET /v1/models (list) and GET /v1/models/{id} (manifest, metrics, lineage),
// with the sample grid from GET /v1/models/{id}/samples.png (fetched as a blob so a Bearer
// token works), the loss curves from GET /v1/models/{id}/losses, and a side-by-side comparison
// of two models through POST /v1/generate with the same seed and labels.

import { getJson, objectUrl } from "./api.js";
import { lossCharts } from "./chart.js";
import { generateJson } from "./generate.js";
import { NO_FINDING, fillFindings, labelText } from "./labels.js";
import { reportList } from "./reports.js";
import { arrayTable, clear, el, fmtTime, hideNotice, renderJson, showError } from "./ui.js";

let list, detail, errorBox, selected = null, sampleUrl = null;
let cmpForm, cmpOut, cmpError;
const kinds = new Map(); // model id -> kind
const labelsOf = new Map(); // model id -> its label schema {general, findings}, from GET /v1/models
// Kinds that generate on their own (a stage-2 model needs its stage 1: use its GDGAN bundle).
const GENERATES = new Set(["gdgan", "acgan", "gdgan-stage1"]);

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
      kinds.set(modelId(m), m.kind);
      if (m.labels) labelsOf.set(modelId(m), m.labels);
    }
    fillCompareChoices(sorted);
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
  const curvesBox = el("div", { id: "model-curves" }, el("p", { class: "muted" }, "Loading loss curves…"));
  detail.append(section("Loss curves", curvesBox));
  getJson(`/v1/models/${encodeURIComponent(id)}/losses`)
    .then((body) => {
      if (selected !== id) return;
      const phases = body.phases || {};
      clear(curvesBox).append(Object.keys(phases).length ? lossCharts(phases) : el("p", { class: "muted" }, "No loss curves were recorded for this model."));
      const quality = body.quality || {};
      if (Object.keys(quality).length) {
        curvesBox.append(el("h4", {}, "Quality during training"), lossCharts(quality, { kind: "quality" }));
      }
    })
    .catch((err) => clear(curvesBox).append(el("p", { class: "muted" }, `No loss curves: ${err.message}`)));
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

function fillCompareChoices(items) {
  const usable = items.filter((m) => GENERATES.has(m.kind));
  document.querySelectorAll(".compare-model").forEach((sel, i) => {
    const cur = sel.value;
    clear(sel);
    for (const m of usable) sel.append(el("option", { value: modelId(m) }, `${m.kind} · ${modelId(m)}`));
    if ([...sel.options].some((o) => o.value === cur)) sel.value = cur;
    else if (sel.options.length > i) sel.selectedIndex = i; // A = newest, B = the next one
  });
  syncCompareLabels();
}

/**
 * Both models get the same labels, so the form offers only what both schemas have: the findings
 * they share, and gender / view only when both condition on them.
 */
function syncCompareLabels() {
  const f = cmpForm.elements;
  const schemas = [f.a.value, f.b.value].map((id) => labelsOf.get(id)).filter(Boolean);
  if (!schemas.length) return;
  const shared = schemas[0].findings.filter((x) => schemas.every((sc) => sc.findings.includes(x)));
  fillFindings(f.finding, shared, { none: NO_FINDING });
  for (const g of ["gender", "view"]) {
    const has = schemas.every((sc) => (sc.general || []).includes(g));
    f[g].disabled = !has;
    f[g].closest(".field").hidden = !has;
  }
}

/** One side of the comparison: the images, each with its labels, and the model's final losses. */
function compareColumn(id, out) {
  const grid = el("div", { class: "image-grid", "data-model": id });
  out.images.forEach((img, i) => {
    const labels = labelText(img.findings, img.gender, img.view, img.ageBand);
    grid.append(el("figure", { class: "card", "data-index": String(i) },
      el("img", { src: img.src, alt: `${id} image ${i + 1}: ${labels}`, width: "96", height: "96" }),
      el("figcaption", {}, el("span", { class: "labels" }, labels))));
  });
  const quality = el("div", { class: "compare-quality" }, el("p", { class: "muted small" }, "Looking for quality figures…"));
  fidelityFromReports(id).then((nodes) => clear(quality).append(el("h4", {}, "Quality figures"), ...nodes));
  return el("section", { class: "compare-side", "data-model": id, "aria-label": `Model ${id}` },
    el("h3", {}, el("span", { class: "kind" }, kinds.get(id) || "model"), " ", el("code", {}, id)),
    el("p", { class: "muted small" }, `seed ${out.seed}`), grid, quality);
}

async function compare(e) {
  e.preventDefault();
  hideNotice(cmpError, cmpForm);
  const f = cmpForm.elements;
  const finding = f.finding.value === "__none__" ? null : f.finding.value;
  // gender and view are given, not drawn from each model's own label mix, so both sides get the same labels
  const given = (name) => (f[name].disabled ? null : f[name].value);
  const base = { n: Number(f.n.value || 8), seed: Number(f.seed.value || 0), finding, gender: given("gender"), view: given("view") };
  const ids = [f.a.value, f.b.value];
  if (!ids[0] || !ids[1]) {
    showError(cmpError, new Error("Pick two models (train them on the Jobs page)."));
    return;
  }
  const button = document.getElementById("cmp-submit");
  button.disabled = true;
  clear(cmpOut).append(el("p", { class: "muted" }, "Generating with both models…"));
  try {
    // Same seed and labels for both: any difference in the pictures is the models'.
    const bodyFor = (id) => ({ ...base, model: id, ...(kinds.get(id) === "gdgan-stage1" ? { stage: 1 } : {}) });
    const outs = await Promise.all(ids.map((id) => generateJson(bodyFor(id))));
    clear(cmpOut).append(
      el("p", {}, `Same seed (${base.seed}) and labels (${[finding ? finding.replaceAll("_", " ") : NO_FINDING, base.gender, base.view].filter(Boolean).join(" · ")}) for both models.`),
      el("div", { class: "compare-grid", id: "compare-grid" }, outs.map((o, i) => compareColumn(ids[i], o))),
    );
  } catch (err) {
    clear(cmpOut);
    showError(cmpError, err, { retry: () => cmpForm.requestSubmit(), form: cmpForm });
  } finally {
    button.disabled = false;
  }
}

export function init() {
  cmpForm = document.getElementById("compare-form");
  cmpOut = document.getElementById("compare-out");
  cmpError = document.getElementById("compare-error");
  cmpForm.addEventListener("submit", compare);
  cmpForm.elements.a.addEventListener("change", syncCompareLabels);
  cmpForm.elements.b.addEventListener("change", syncCompareLabels);
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
