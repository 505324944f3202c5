// Jobs page: list (GET /v1/jobs), live progress per unfinished job from its SSE stream
// (GET /v1/jobs/{id}/events), start dataset/train/evaluate jobs, cancel.
// The list is also re-polled every few seconds so jobs started elsewhere (CLI, curl) appear.

import { getJson, postJson, request, streamEvents } from "./api.js";
import { lossChart, phaseName } from "./chart.js";
import { hasSources, initDatasetForm, readBody } from "./datasets.js";
import { PRESETS, TRAIN_MODELS, fillFindings } from "./labels.js";
import { announce, clear, el, fmtEta, fmtNumber, fmtTime, hideNotice, progressBar, setProgress, showError, showInfo } from "./ui.js";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 4000;
// Browsers allow ~6 HTTP/1.1 connections per host; each event stream holds one open. Follow at
// most this many jobs live (newest first) and let the poll keep the others current.
const MAX_STREAMS = 3;
const jobs = new Map(); // id -> record
const rows = new Map(); // id -> {tr, parts}
const streams = new Map(); // id -> AbortController
// Loss curves per training job, {phase: {step: [...], <loss>: [...]}}: appended live from the
// job's progress events; for a job that finished before the page opened, the stored curves of
// the model it made (GET /v1/models/{id}/losses).
const curves = new Map();
const storedAsked = new Set();
// Latest live sample grid per training job: {phase, step, url}, from GET /v1/jobs/{id}/preview.png
// whenever the job's event stream announces one.
const previews = new Map();
// Jobs whose curves this page saw arrive live: their row stays open when they finish. Older
// finished jobs keep theirs behind a "Loss curves" toggle, so the list stays short.
const watched = new Set();
let tbody, errorBox, pollTimer = null, visible = false;

export function jobId(j) {
  return j.id ?? j.job_id;
}

/** Progress fields may sit in job.progress or at the top level; fraction may be missing. */
export function progressOf(j) {
  const p = j.progress && typeof j.progress === "object" ? j.progress : j;
  let fraction = p.fraction;
  if (fraction == null && p.total) fraction = (p.step || 0) / p.total;
  if (j.status === "succeeded") fraction = 1;
  return { fraction, step: p.step, total: p.total, eta: p.eta_s ?? p.eta, phase: p.phase, phases: p.phases || [], message: p.message, losses: p.losses ?? p.metrics };
}

/** "stage1 (1 of 2) 30/60": the phase, its place among the job's phases and its own steps. */
export function phaseNote(p) {
  if (!p.phase) return p.total ? `${p.step ?? 0}/${p.total}` : "";
  // a sub-phase ("stage2 quality") is named after its phase: "Stage 2 (2 of 2) quality 10/30"
  const [base, ...rest] = String(p.phase).split(" ");
  const i = p.phases.indexOf(base);
  const where = i >= 0 && p.phases.length > 1 ? ` (${i + 1} of ${p.phases.length})` : "";
  const sub = rest.length ? ` ${rest.join(" ")}` : "";
  return `${phaseName(base)}${where}${sub}${p.total ? ` ${p.step ?? 0}/${p.total}` : ""}`;
}

function recordLosses(id, d) {
  if (!d.phase || !d.losses || typeof d.losses !== "object" || !Object.keys(d.losses).length || d.step == null) return;
  const job = curves.get(id) || {};
  const c = job[d.phase] || (job[d.phase] = { step: [] });
  if (c.step.length && d.step <= c.step[c.step.length - 1]) return; // a repeated or older event
  watched.add(id);
  c.step.push(d.step);
  for (const [k, v] of Object.entries(d.losses)) {
    if (!c[k]) c[k] = c.step.slice(0, -1).map(() => null);
    c[k].push(v);
  }
  curves.set(id, job);
}

async function loadStoredCurves(j) {
  const id = jobId(j);
  const model = j.result?.model_id;
  if (!model || storedAsked.has(id) || curves.has(id)) return;
  storedAsked.add(id);
  try {
    const body = await getJson(`/v1/models/${encodeURIComponent(model)}/losses`);
    if (Object.keys(body.phases || {}).length && !curves.has(id)) {
      curves.set(id, body.phases);
      renderAll();
    }
  } catch {
    /* a model without stored curves: nothing to draw */
  }
}

async function loadPreview(id, ev) {
  const prev = previews.get(id);
  if (prev && (prev.phase === ev.phase && prev.step >= ev.step)) return;
  try {
    const resp = await request(`/v1/jobs/${encodeURIComponent(id)}/preview.png`, { accept: "image/png" });
    const blob = await resp.blob();
    const step = Number(resp.headers.get("X-GDGAN-Step") ?? ev.step);
    const phase = resp.headers.get("X-GDGAN-Phase") ?? ev.phase;
    const cur = previews.get(id);
    if (cur && cur.phase === phase && cur.step >= step) return; // an older answer arrived late
    if (cur) URL.revokeObjectURL(cur.url);
    previews.set(id, { phase, step, url: URL.createObjectURL(blob) });
    renderAll();
  } catch {
    /* no preview (yet): the next event tries again */
  }
}

function renderPreview(row, id) {
  const pv = previews.get(id);
  if (!pv) return;
  if (!row.preview) {
    row.previewImg = el("img", { class: "preview-img", alt: "" });
    row.previewCap = el("figcaption");
    row.preview = el("figure", { class: "job-preview" }, row.previewImg, row.previewCap);
    row.curvesCell.prepend(row.preview);
  }
  if (row.previewImg.getAttribute("src") !== pv.url) {
    const text = `${phaseName(pv.phase)}, step ${pv.step}: samples at fixed seeds`;
    row.previewImg.src = pv.url;
    row.previewImg.alt = `Live sample grid of job ${id}, ${text}`;
    row.previewCap.textContent = text;
    row.preview.dataset.step = String(pv.step);
    row.preview.dataset.phase = pv.phase;
  }
}

/** The row under a training job: its latest sample grid and one loss chart per phase. */
function renderCurves(row, id, open) {
  const job = curves.get(id) || {};
  if (row.curvesTr) row.curvesTr.hidden = !open;
  if (!open || (!curves.has(id) && !previews.has(id))) return;
  if (!row.curvesTr) {
    // the charts sit in a flex box inside the cell: a flex <td> would stop spanning the row
    row.curvesCell = el("div", { class: "loss-charts" });
    row.curvesTr = el("tr", { class: "job-curves", "data-curves-of": id }, el("td", { colspan: "7" }, row.curvesCell));
    row.charts = new Map();
  }
  renderPreview(row, id);
  for (const [phase, c] of Object.entries(job)) {
    const chart = row.charts.get(phase);
    if (!chart || Object.keys(c).some((k) => k !== "step" && !chart.names.includes(k))) {
      const next = lossChart(phase, c);
      if (chart) chart.node.replaceWith(next.node);
      else row.curvesCell.append(next.node);
      row.charts.set(phase, next);
    } else chart.update(c);
  }
}

function artifactLink(id) {
  if (typeof id !== "string") return String(id);
  if (id.startsWith("report-")) return el("a", { href: `#/reports/${encodeURIComponent(id)}` }, id);
  if (/^(gdgan|acgan)/.test(id)) return el("a", { href: `#/models/${encodeURIComponent(id)}` }, id);
  return el("code", {}, id);
}

function resultNode(j) {
  if (j.error) return el("span", { class: "error-text" }, String(j.error));
  const r = j.result;
  if (!r || (typeof r === "object" && !Object.keys(r).length)) {
    const p = progressOf(j);
    return el("span", { class: "muted" }, [p.phase, p.message].filter(Boolean).join(": ") || "");
  }
  if (typeof r !== "object") return artifactLink(r);
  const items = [];
  const seen = new Set(); // results often name one artifact twice (e.g. acgan and model_id)
  const add = (k, v) => {
    if (v == null || typeof v === "object" || seen.has(v)) return;
    seen.add(v);
    items.push(el("li", {}, `${k}: `, artifactLink(v)));
  };
  for (const [k, v] of Object.entries(r)) {
    if (v && typeof v === "object") for (const [k2, v2] of Object.entries(v)) add(k2, v2);
    else add(k, v);
  }
  return el("ul", { class: "result-list" }, items);
}

function statusBadge(status) {
  return el("span", { class: `status status-${status}` }, status || "?");
}

function renderRow(j) {
  const id = jobId(j);
  let row = rows.get(id);
  if (!row) {
    const pb = progressBar(`Progress of job ${id}`);
    const cancel = el("button", { type: "button", class: "secondary small", "aria-label": `Cancel job ${id}`, onclick: () => cancelJob(id) }, "Cancel");
    const toggle = el("button", { type: "button", class: "secondary small", "aria-expanded": "false", "aria-label": `Loss curves of job ${id}`, hidden: true }, "Loss curves");
    const cells = {
      id: el("td", {}, el("code", {}, id), el("div", { class: "muted small" }, fmtTime(j.created_at ?? j.created))),
      type: el("td"),
      status: el("td"),
      progress: el("td", { class: "progress-cell" }, pb.node),
      eta: el("td"),
      result: el("td", { class: "result-cell" }),
      actions: el("td", { class: "actions" }, cancel, toggle),
    };
    const tr = el("tr", { "data-job-id": id }, Object.values(cells));
    row = { tr, cells, pb, cancel, toggle, expanded: null };
    toggle.addEventListener("click", () => {
      row.expanded = toggle.getAttribute("aria-expanded") !== "true";
      if (row.expanded) loadStoredCurves(jobs.get(id) || { id });
      renderAll();
    });
    rows.set(id, row);
  }
  const p = progressOf(j);
  row.tr.dataset.status = j.status || "";
  clear(row.cells.type).append(j.type || "?");
  clear(row.cells.status).append(statusBadge(j.status));
  // One bar per job across its phases (stage 1, then stage 2): the overall percentage, with the
  // current phase and its own steps beside it.
  const stepNote = FINAL.has(j.status) ? "" : phaseNote(p);
  if (j.status === "queued" && p.fraction == null) setProgress(row.pb, 0, "queued");
  else setProgress(row.pb, p.fraction, stepNote);
  if (p.losses && typeof p.losses === "object" && !FINAL.has(j.status)) {
    const txt = Object.entries(p.losses).slice(0, 3).map(([k, v]) => `${k} ${fmtNumber(v)}`).join(" · ");
    row.pb.node.title = txt;
  }
  row.cells.eta.textContent = FINAL.has(j.status) ? "—" : fmtEta(p.eta);
  clear(row.cells.result).append(resultNode(j));
  row.cancel.hidden = FINAL.has(j.status);
  // a finished training job that made a model can show its stored curves on demand
  row.toggle.hidden = !(j.type === "train" && j.status === "succeeded" && j.result?.model_id) || watched.has(id);
  const open = !FINAL.has(j.status) || watched.has(id) || row.expanded === true;
  renderCurves(row, id, open);
  row.toggle.setAttribute("aria-expanded", String(open));
  return row;
}

function sortKey(j) {
  const t = j.created_at ?? j.created ?? 0;
  return typeof t === "number" ? t : Date.parse(t) || 0;
}

function renderAll() {
  const list = [...jobs.values()].sort((a, b) => sortKey(b) - sortKey(a));
  const trs = [];
  for (const j of list) {
    const row = renderRow(j);
    trs.push(row.tr);
    if (row.curvesTr && !row.curvesTr.hidden) trs.push(row.curvesTr);
    else if (row.curvesTr) row.curvesTr.remove();
  }
  trs.forEach((tr, i) => {
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
  });
  document.getElementById("jobs-empty").hidden = list.length > 0;
}

function merge(id, patch) {
  const prev = jobs.get(id) || { id };
  const next = { ...prev, ...patch };
  if (patch.progress && prev.progress && typeof prev.progress === "object") next.progress = { ...prev.progress, ...patch.progress };
  jobs.set(id, next);
  renderAll();
  // a finished job may have made a new dataset or model: refresh the form choices
  if (prev.status && !FINAL.has(prev.status) && FINAL.has(next.status)) loadChoices();
  return next;
}

function onEvent(id, { event, data }) {
  if (data == null || typeof data !== "object") return;
  if (data.job && typeof data.job === "object") data = data.job;
  if (event === "part") {
    // one fan-out part (evaluation) changed: {part, status}; not the job's own status
    const prev = jobs.get(id) || {};
    merge(id, { parts: { ...(prev.parts || {}), [data.part]: data.status } });
    return;
  }
  if (event === "preview") {
    loadPreview(id, data);
    return;
  }
  if (event === "cancel") {
    merge(id, { cancel_requested: true });
    return;
  }
  if ("status" in data || "result" in data || "error" in data) {
    merge(id, data);
  } else if ("step" in data || "fraction" in data || "total" in data || "eta_s" in data) {
    const prev = jobs.get(id) || {};
    recordLosses(id, data);
    merge(id, { progress: data, status: prev.status === "queued" || !prev.status ? "running" : prev.status });
  } else if (data.progress) merge(id, { progress: data.progress });
  else return;
  if (event === "end" || event === "done" || FINAL.has(jobs.get(id)?.status)) announce(`Job ${id}: ${jobs.get(id)?.status}`);
}

function follow(id) {
  if (streams.has(id) || !visible || streams.size >= MAX_STREAMS) return;
  const ctrl = new AbortController();
  streams.set(id, ctrl);
  streamEvents(`/v1/jobs/${encodeURIComponent(id)}/events`, (ev) => onEvent(id, ev), { signal: ctrl.signal })
    .catch(() => {
      /* dropped stream: the poll below keeps the row current and re-follows */
    })
    .finally(async () => {
      if (streams.get(id) === ctrl) streams.delete(id);
      if (ctrl.signal.aborted) return;
      try {
        merge(id, await getJson(`/v1/jobs/${encodeURIComponent(id)}`));
      } catch {
        /* keep what we have */
      }
    });
}

async function refresh() {
  try {
    const body = await getJson("/v1/jobs");
    const list = Array.isArray(body) ? body : body.jobs || body.items || [];
    for (const j of list) {
      const id = jobId(j);
      if (!id) continue;
      // Keep the live (SSE) progress if the listing is older than what the stream told us.
      const prev = jobs.get(id);
      const keepProgress = prev && streams.has(id) && !FINAL.has(j.status);
      jobs.set(id, keepProgress ? { ...j, progress: prev.progress, status: prev.status === "running" && j.status === "queued" ? "running" : j.status } : j);
    }
    renderAll();
    const open = [...jobs.values()].filter((j) => !FINAL.has(j.status)).sort((a, b) => sortKey(b) - sortKey(a));
    for (const j of open) follow(jobId(j));
    if (errorBox.dataset.source === "list") hideNotice(errorBox);
  } catch (err) {
    showError(errorBox, err, { retry: refresh });
    errorBox.dataset.source = "list";
  }
}

async function cancelJob(id) {
  try {
    await request(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
    showInfo(errorBox, `Cancel requested for ${id}; the job stops at its next step and keeps a checkpoint.`);
    errorBox.dataset.source = "";
    refresh();
  } catch (err) {
    showError(errorBox, err);
    errorBox.dataset.source = "";
  }
}

function intOrNull(v) {
  const s = String(v ?? "").trim();
  return s === "" ? null : Number(s);
}

async function submitJob(form, path, body, what, jobType) {
  hideNotice(errorBox, form);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const out = await postJson(path, body);
    const id = out.job_id ?? out.id;
    showInfo(errorBox, `${what} started: job ${id}${out.dataset_id ? ` (dataset ${out.dataset_id})` : ""}.`);
    errorBox.dataset.source = "";
    if (id) merge(id, { id, type: out.type || jobType, status: out.status || "queued", created: new Date().toISOString() });
    if (id && !streams.has(id) && streams.size >= MAX_STREAMS) {
      // the job just started here matters most: drop the oldest live stream to make room
      const oldest = [...streams.keys()].sort((a, b) => sortKey(jobs.get(a) || {}) - sortKey(jobs.get(b) || {}))[0];
      streams.get(oldest)?.abort();
      streams.delete(oldest);
    }
    if (id) follow(id);
    await refresh();
    announce(`${what} job ${id} queued.`);
  } catch (err) {
    showError(errorBox, err, { retry: () => form.requestSubmit(), form });
    errorBox.dataset.source = "";
  } finally {
    button.disabled = false;
  }
}

let datasetLabels = {}; // dataset id -> its label schema, from GET /v1/datasets

/** Any finding of the chosen dataset can be the evaluation target: the list is the dataset's own. */
function syncEvalFindings() {
  const labels = datasetLabels[document.getElementById("ev-dataset").value];
  fillFindings(document.getElementById("ev-finding"), labels ? labels.findings : []);
}

async function loadChoices() {
  const fill = (select, items, { blank = null } = {}) => {
    const cur = select.value;
    clear(select);
    if (blank) select.append(el("option", { value: "" }, blank));
    for (const [value, text] of items) select.append(el("option", { value }, text));
    if ([...select.options].some((o) => o.value === cur)) select.value = cur;
  };
  try {
    const body = await getJson("/v1/datasets");
    const list = Array.isArray(body) ? body : body.datasets || body.items || [];
    datasetLabels = Object.fromEntries(list.filter((d) => d.labels).map((d) => [d.id || d.dataset_id, d.labels]));
    const items = list.map((d) => {
      const id = d.id || d.dataset_id;
      const n = d.n ?? d.size_n ?? d.meta?.n ?? d.counts?.total;
      return [id, n ? `${id} (${n} images)` : id];
    }); // newest first, as the API lists them
    document.querySelectorAll(".dataset-select").forEach((s) => fill(s, items, { blank: items.length ? null : "— no datasets yet —" }));
    syncEvalFindings();
  } catch {
    /* the list error shows via refresh() */
  }
  try {
    const body = await getJson("/v1/models");
    const list = Array.isArray(body) ? body : body.models || body.items || [];
    document.querySelectorAll(".model-select").forEach((s) => {
      const items = list.filter((m) => m.kind === s.dataset.kind).map((m) => [m.id || m.model_id, m.id || m.model_id]);
      fill(s, items, { blank: "train one per split" });
    });
  } catch {
    /* idem */
  }
}

export function init() {
  tbody = document.querySelector("#jobs-table tbody");
  errorBox = document.getElementById("jobs-error");
  document.querySelectorAll(".preset-select").forEach((s) => {
    for (const p of PRESETS) s.append(el("option", { value: p, selected: p === "demo" }, p));
  });
  const trModel = document.getElementById("tr-model");
  for (const [k, v] of Object.entries(TRAIN_MODELS)) trModel.append(el("option", { value: k }, v));
  document.getElementById("ev-dataset").addEventListener("change", syncEvalFindings);

  const dsForm = document.getElementById("job-dataset-form");
  dsForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const { body, error, field } = readBody(dsForm);
    if (error) return showError(errorBox, { message: error, field }, { form: dsForm });
    submitJob(dsForm, "/v1/datasets", body, "Dataset", "ingest");
  });
  const trForm = document.getElementById("job-train-form");
  trForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = trForm.elements;
    submitJob(trForm, "/v1/jobs/train", { dataset_id: f.dataset_id.value || null, model: f.model.value, preset: f.preset.value, split_seed: intOrNull(f.split_seed.value) }, "Training", "train");
  });
  const evForm = document.getElementById("job-eval-form");
  evForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = evForm.elements;
    const body = { dataset_id: f.dataset_id.value || null, finding: f.finding.value, repeats: intOrNull(f.repeats.value), preset: f.preset.value };
    if (f.gdgan.value) body.gdgan = f.gdgan.value;
    if (f.acgan.value) body.acgan = f.acgan.value;
    submitJob(evForm, "/v1/jobs/evaluate", body, "Evaluation", "evaluate");
  });
  document.getElementById("jobs-refresh").addEventListener("click", () => {
    refresh();
    loadChoices();
  });
}

export function show() {
  visible = true;
  if (!hasSources()) initDatasetForm(document.getElementById("job-dataset-form")).catch((err) => showError(errorBox, err));
  refresh();
  loadChoices();
  clearInterval(pollTimer);
  pollTimer = setInterval(refresh, POLL_MS);
}

export function hide() {
  visible = false;
  clearInterval(pollTimer);
  pollTimer = null;
  for (const c of streams.values()) c.abort();
  streams.clear();
}
