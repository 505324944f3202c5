// Generate page: POST /v1/generate (format json for the grid, zip for "Download ZIP").
// The server is the authority on limits (N cap, label names): its 422 answers are shown
// inline naming the field, so the page never disagrees with the API about what is valid.

import { getJson, request, saveBlob } from "./api.js";
import { NO_FINDING, fillFindings, labelText } from "./labels.js";
import { announce, clear, el, hideNotice, progressBar, setProgress, showError } from "./ui.js";

const DEFAULT_CAP = 256;
let form, results, errorBox, progressRow;
let modelKinds = {}; // model id -> kind, from GET /v1/models
let modelLabels = {}; // model id or alias -> its label schema {general, findings}, from GET /v1/models
let lastRequest = null;
let busy = false;

/** Pull the image list out of a generate JSON answer, tolerating small naming differences. */
export function normaliseImages(body) {
  const list = Array.isArray(body) ? body : body.images || body.items || body.samples || [];
  return list.map((item, i) => {
    const b64 = item.png_base64 ?? item.png ?? item.image ?? item.data ?? item.b64 ?? "";
    const src = b64.startsWith("data:") ? b64 : `data:image/png;base64,${b64}`;
    const labels = item.labels && typeof item.labels === "object" ? item.labels : item;
    const findings = labels.findings ?? labels.finding ?? labels.finding_labels ?? null;
    return {
      index: item.index ?? i,
      src,
      findings,
      gender: labels.gender ?? null,
      view: labels.view ?? labels.view_position ?? null,
      ageBand: labels.age_band ?? null,
      filename: item.filename || item.name || null,
    };
  });
}

function readForm() {
  const f = new FormData(form);
  const nRaw = String(f.get("n") ?? "").trim();
  const seedRaw = String(f.get("seed") ?? "").trim();
  const finding = f.get("finding");
  const body = {
    model: f.get("model"),
    n: nRaw === "" ? null : Number(nRaw),
    finding: finding === "__none__" ? null : finding,
    gender: f.get("gender") || null,
    view: f.get("view") || null,
    age_band: f.get("age_band") || null,
    seed: seedRaw === "" ? null : Number(seedRaw),
  };
  const stage1Only = modelKinds[body.model] === "gdgan-stage1";
  if (isGdgan(body.model)) body.stage = stage1Only ? 1 : Number(f.get("stage") || 2);
  return { body, compare: isGdgan(body.model) && !stage1Only && f.get("compare") === "on" };
}

function isGdgan(model) {
  if (model === "gdgan") return true;
  if (model === "acgan") return false;
  const kind = modelKinds[model] || "";
  return kind.startsWith("gdgan") || kind === "";
}

const BUSY_RETRIES = 2; // automatic retries of a 503 "busy" answer before asking the user
const BUSY_MAX_WAIT_S = 10;

/** POST /v1/generate; a 503 (queue full) is retried after its Retry-After, a couple of times. */
async function callGenerate(body, format, onBusy = () => {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await request("/v1/generate", { method: "POST", body: { ...body, format }, accept: "*/*" });
    } catch (err) {
      const wait = Math.min(BUSY_MAX_WAIT_S, Math.max(1, Number(err.retryAfter) || 1));
      if (err.status !== 503 || attempt >= BUSY_RETRIES) throw err;
      onBusy(wait, attempt + 1);
      await new Promise((r) => setTimeout(r, wait * 1000));
    }
  }
}

export async function generateJson(body, onBusy = () => {}) {
  const resp = await callGenerate(body, "json", onBusy);
  const data = await resp.json();
  const seedHeader = resp.headers.get("X-GDGAN-Seed") ?? resp.headers.get("X-Seed");
  const modelHeader = resp.headers.get("X-GDGAN-Model-Id") ?? resp.headers.get("X-Model-Id");
  const seed = data.seed ?? (seedHeader != null ? Number(seedHeader) : null);
  const modelId = data.model_id ?? data.model ?? modelHeader ?? body.model;
  return { images: normaliseImages(data), seed, modelId, stage: data.stage ?? body.stage ?? null, raw: data };
}

function imageCard(img, i, seed, stageImgs = null) {
  const caption = labelText(img.findings, img.gender, img.view, img.ageBand);
  const base = `gdgan_seed${seed ?? "x"}_${String(i).padStart(3, "0")}`;
  const figure = el("figure", { class: "card", "data-index": String(i) });
  const pics = el("div", { class: stageImgs ? "pair" : "single" });
  if (stageImgs) {
    pics.append(
      el("div", { class: "stage" }, el("img", { src: stageImgs.src, alt: `Stage 1 image ${i + 1}: ${labelText(stageImgs.findings, stageImgs.gender, stageImgs.view, stageImgs.ageBand)}`, width: "128", height: "128" }), el("span", { class: "stage-tag" }, "stage 1")),
      el("div", { class: "stage" }, el("img", { src: img.src, alt: `Stage 2 image ${i + 1}: ${caption}`, width: "128", height: "128" }), el("span", { class: "stage-tag" }, "stage 2")),
    );
  } else {
    pics.append(el("img", { src: img.src, alt: `Synthetic image ${i + 1}: ${caption}`, width: "128", height: "128" }));
  }
  figure.append(pics);
  const links = el("span", { class: "dl" });
  if (stageImgs) {
    links.append(el("a", { href: stageImgs.src, download: `${base}_stage1.png` }, "stage 1"), " · ");
    links.append(el("a", { href: img.src, download: `${base}_stage2.png` }, "stage 2"));
  } else {
    links.append(el("a", { href: img.src, download: `${base}.png`, "aria-label": `Download image ${i + 1}` }, "Download"));
  }
  figure.append(el("figcaption", {}, el("span", { class: "labels" }, caption), links));
  return figure;
}

function renderResults(out, compareOut) {
  clear(results);
  const n = out.images.length;
  const summary = el(
    "div",
    { class: "result-summary" },
    el("p", {}, el("strong", {}, `${n} image${n === 1 ? "" : "s"}`), ` from model `, el("code", { class: "model-id" }, out.modelId), compareOut ? " · stage 1 vs stage 2" : out.stage ? ` · stage ${out.stage}` : ""),
    el("p", {}, "Seed used: ", el("code", { id: "gen-seed-used" }, String(out.seed ?? "?")), " ",
      el("button", { type: "button", class: "linkish", onclick: () => { form.elements.seed.value = out.seed ?? ""; form.elements.seed.focus(); } }, "reuse this seed")),
    el("div", { class: "row" },
      el("button", { id: "gen-zip", type: "button", onclick: downloadZip }, "Download ZIP"),
    ),
  );
  results.append(summary);
  const grid = el("div", { class: compareOut ? "image-grid compare" : "image-grid", id: "gen-grid" });
  out.images.forEach((img, i) => grid.append(imageCard(img, i, out.seed, compareOut ? compareOut.images[i] : null)));
  results.append(grid);
}

async function onSubmit(e) {
  e.preventDefault();
  if (busy) return;
  const { body, compare } = readForm();
  hideNotice(errorBox, form);
  clear(results); // the grid always shows the current request, never a stale one next to an error
  lastRequest = null;
  busy = true;
  const button = document.getElementById("gen-submit");
  button.disabled = true;
  const p = progressBar("Generating images");
  clear(progressRow).append(el("span", {}, "Generating… "), p.node);
  progressRow.hidden = false;
  setProgress(p, null, "waiting for the generator");
  const started = performance.now();
  let note = "waiting for the generator";
  const tick = setInterval(() => setProgress(p, null, `${note} · ${((performance.now() - started) / 1000).toFixed(0)} s`), 500);
  const onBusy = (wait, n) => {
    note = `generator busy, retry ${n} in ${wait} s`;
    announce(`The generator is busy; retrying in ${wait} seconds.`);
  };
  try {
    const main = await generateJson(body, onBusy);
    let pair = null;
    if (compare) {
      note = "stage 1 of the same seeds";
      // Same seed + same labels -> the same latents: the stage-1 image that stage 2 refined.
      pair = await generateJson({ ...body, seed: main.seed, stage: 1 }, onBusy);
    }
    lastRequest = { ...body, seed: main.seed };
    renderResults(main, pair);
    announce(`Generated ${main.images.length} images with seed ${main.seed}.`);
  } catch (err) {
    showError(errorBox, err, { retry: () => form.requestSubmit(), form });
    announce(err.message);
  } finally {
    clearInterval(tick);
    progressRow.hidden = true;
    button.disabled = false;
    busy = false;
  }
}

async function downloadZip() {
  if (!lastRequest) return;
  const btn = document.getElementById("gen-zip");
  btn.disabled = true;
  btn.textContent = "Preparing ZIP…";
  try {
    const resp = await callGenerate(lastRequest, "zip");
    const blob = await resp.blob();
    const cd = resp.headers.get("Content-Disposition") || "";
    const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
    saveBlob(blob, m ? decodeURIComponent(m[1]) : `gdgan_seed${lastRequest.seed}_n${lastRequest.n}.zip`);
  } catch (err) {
    showError(errorBox, err, { retry: downloadZip });
  } finally {
    btn.disabled = false;
    btn.textContent = "Download ZIP";
  }
}

/** The finding list and the general-label fields follow the chosen model's own schema. */
function syncLabelControls() {
  const labels = modelLabels[form.elements.model.value];
  if (!labels) return; // no model of that kind yet: the server answers 404 and says so
  fillFindings(form.elements.finding, labels.findings, { none: `${NO_FINDING} (no finding)` });
  // the age band's values are the model's own (its edges), listed by the API in labels.values
  const bands = (labels.values || {}).age_band || [];
  const ageSel = form.elements.age_band;
  const keep = ageSel.value;
  while (ageSel.options.length > 1) ageSel.options[1].remove();
  for (const b of bands) ageSel.append(new Option(b, b));
  ageSel.value = bands.includes(keep) ? keep : "";
  for (const g of ["gender", "view", "age_band"]) {
    const has = (labels.general || []).includes(g);
    form.elements[g].disabled = !has;
    if (!has) form.elements[g].value = "";
    form.elements[g].closest(".field").hidden = !has;
  }
}

function syncStageControls() {
  syncLabelControls();
  const model = form.elements.model.value;
  const gd = isGdgan(model);
  const stage1Only = modelKinds[model] === "gdgan-stage1";
  if (stage1Only) form.elements.stage.value = "1";
  form.elements.stage.disabled = !gd || stage1Only || form.elements.compare.checked;
  form.elements.compare.disabled = !gd || stage1Only;
}

async function loadCap() {
  // Use the cap if the OpenAPI schema states it (n: maximum); else the default cap. Either way the
  // server enforces it and its 422 says so in words.
  try {
    const spec = await getJson("/openapi.json");
    const n = spec.components?.schemas?.GenerateRequest?.properties?.n;
    if (n && typeof n.maximum === "number") return n.maximum;
  } catch {
    /* no spec: use default */
  }
  return DEFAULT_CAP;
}

async function loadModels() {
  const select = form.elements.model;
  try {
    const body = await getJson("/v1/models");
    const list = Array.isArray(body) ? body : body.models || body.items || [];
    select.querySelectorAll("optgroup").forEach((g) => g.remove());
    const group = el("optgroup", { label: "Registered models" });
    modelKinds = {};
    modelLabels = {};
    for (const m of list) {
      const id = m.id || m.model_id;
      if (!id) continue;
      modelKinds[id] = m.kind || "";
      if (m.labels) {
        modelLabels[id] = m.labels;
        // the list is newest first: the first of a kind is what the alias means
        if (m.kind in { gdgan: 1, acgan: 1 } && !(m.kind in modelLabels)) modelLabels[m.kind] = m.labels;
      }
      // every registered generator; a stage-only model answers a request for the other stage with a
      // 422 that says which stage it has
      group.append(el("option", { value: id }, `${id} (${m.kind})`));
    }
    if (group.children.length) select.append(group);
  } catch (err) {
    // Generation still works with the "latest" aliases; say why the list is short.
    if (err.status === 401) showError(errorBox, err);
  }
  syncStageControls();
}

export function init() {
  form = document.getElementById("gen-form");
  results = document.getElementById("gen-results");
  errorBox = document.getElementById("gen-error");
  progressRow = document.getElementById("gen-progress");
  form.addEventListener("submit", onSubmit);
  form.elements.model.addEventListener("change", syncStageControls);
  form.elements.compare.addEventListener("change", syncStageControls);
  loadCap().then((cap) => {
    form.elements.n.max = String(cap);
    document.getElementById("gen-cap").textContent = String(cap);
  });
}

export async function show(params = []) {
  await loadModels();
  const wanted = params[0];
  if (wanted) {
    const select = form.elements.model;
    if (![...select.options].some((o) => o.value === wanted)) select.append(el("option", { value: wanted }, wanted));
    select.value = wanted;
    syncStageControls();
  }
}

export function hide() {}
