// Label names come from the API: every dataset and model carries its own label schema
// (GET /v1/models and /v1/datasets: labels.general, labels.findings), so the page has no copy of
// any finding list. NIH's schema is only what the API reports for NIH-labelled artifacts.

/** Fill a <select> with a schema's findings, keeping the current choice when it still exists. */
export function fillFindings(select, findings, { preferred = "Cardiomegaly", none = null } = {}) {
  const cur = select.value;
  while (select.firstChild) select.firstChild.remove();
  for (const f of findings || []) {
    const o = document.createElement("option");
    o.value = f;
    o.textContent = f.replaceAll("_", " ");
    select.append(o);
  }
  if (none) {
    const o = document.createElement("option");
    o.value = "__none__";
    o.textContent = none;
    select.append(o);
  }
  const values = [...select.options].map((o) => o.value);
  select.value = values.includes(cur) ? cur : values.includes(preferred) ? preferred : values[0] ?? "";
}

export const NO_FINDING = "No Finding";
export const GENDERS = { M: "Male", F: "Female" };
export const VIEWS = { PA: "PA (posterior–anterior)", AP: "AP (anterior–posterior)" };
export const PRESETS = ["tiny", "demo", "paper"];
export const TRAIN_MODELS = { gdgan: "GDGAN (stage 1 + stage 2)", stage1: "GDGAN stage 1 only", stage2: "GDGAN stage 2 only", acgan: "ACGAN baseline" };

// Koga et al. 2018 (arXiv 1812.01690), Tables 1–2: what the report is compared against.
export const PAPER = {
  auc: {
    none: { mean: 0.8074, sd: 0.0177 },
    undersample: { mean: 0.7919, sd: null },
    oversample: { mean: 0.8084, sd: null },
    acgan: { mean: 0.7963, sd: null },
    gdgan: { mean: 0.8207, sd: 0.0066 },
  },
  inception: { real: 2.1258, acgan: 2.7716, gdgan: 2.322 },
};

/** Human text for one image's labels: "Cardiomegaly · F · AP". */
export function labelText(findings, gender, view, ageBand = "") {
  let f = findings;
  if (Array.isArray(f)) f = f.length ? f.join(", ") : NO_FINDING;
  if (f == null || f === "") f = NO_FINDING;
  f = String(f).replaceAll("|", ", ");
  // "" = the model has no such label (e.g. a folder of PNGs without sex or view): left out
  // an age band only shows for a model that has one (the API then sends it)
  return [f, ...[gender, view].filter((x) => x !== "").map((x) => x || "?"), ...(ageBand ? [ageBand] : [])].join(" · ");
}
