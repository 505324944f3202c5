// The NIH ChestX-ray14 label schema, mirrored from shared/gdgan/labels.py (same order).
// tests/e2e/test_web_static.py checks that this list equals gdgan.labels.FINDINGS, so the
// two cannot drift apart silently.

export const FINDINGS = [
  "Atelectasis",
  "Cardiomegaly",
  "Consolidation",
  "Edema",
  "Effusion",
  "Emphysema",
  "Fibrosis",
  "Hernia",
  "Infiltration",
  "Mass",
  "Nodule",
  "Pleural_Thickening",
  "Pneumonia",
  "Pneumothorax",
];
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
export function labelText(findings, gender, view) {
  let f = findings;
  if (Array.isArray(f)) f = f.length ? f.join(", ") : NO_FINDING;
  if (f == null || f === "") f = NO_FINDING;
  f = String(f).replaceAll("|", ", ");
  return [f, gender || "?", view || "?"].join(" · ");
}
