// Small DOM helpers shared by the pages: element builder, inline error/notice boxes,
// formatting, and a generic JSON-to-table renderer (the report and model manifests are
// nested JSON whose exact keys may grow; a generic view keeps every value visible).

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/**
 * Show an error inline (role=alert so screen readers announce it). `retry` adds a Retry
 * button, used for 503 "busy" answers. Highlights the offending form field when known.
 */
export function showError(box, err, { retry = null, form = null } = {}) {
  clear(box);
  box.hidden = false;
  box.className = "notice error";
  box.setAttribute("role", "alert");
  const msg = err && err.message ? err.message : String(err);
  box.append(el("p", { class: "msg" }, msg));
  if (err && (err.status === 503 || err.status === 429 || err.status === 0) && retry) {
    box.append(el("button", { type: "button", class: "secondary", onclick: retry }, "Retry"));
  }
  if (err && err.status === 401) {
    const tok = document.getElementById("api-token");
    if (tok) {
      document.getElementById("token-panel")?.setAttribute("open", "");
      tok.classList.add("invalid");
      tok.focus({ preventScroll: true });
    }
  }
  if (form && err && err.field) {
    const input = form.querySelector(`[name="${CSS.escape(err.field)}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", box.id || "");
    }
  }
}

export function showInfo(box, text) {
  clear(box);
  box.hidden = false;
  box.className = "notice info";
  box.setAttribute("role", "status");
  box.append(el("p", { class: "msg" }, text));
}

export function hideNotice(box, form = null) {
  clear(box);
  box.hidden = true;
  if (form) form.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
}

export function fmtEta(seconds) {
  if (seconds == null || !isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function fmtTime(value) {
  if (value == null || value === "") return "—";
  const d = typeof value === "number" ? new Date(value * (value < 1e12 ? 1000 : 1)) : new Date(value);
  if (isNaN(d)) return String(value);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function fmtNumber(v) {
  if (v == null) return "—";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString();
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return v.toFixed(4).replace(/0+$/, "").replace(/\.$/, "");
}

function isScalar(v) {
  return v == null || ["string", "number", "boolean"].includes(typeof v);
}

function scalarText(v) {
  if (v == null) return "—";
  if (typeof v === "number") return fmtNumber(v);
  return String(v);
}

/** A table for an array of flat-ish objects (column union, first-seen order). */
export function arrayTable(rows, caption) {
  const cols = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const table = el("table", { class: "data" });
  if (caption) table.append(el("caption", {}, caption));
  table.append(el("thead", {}, el("tr", {}, cols.map((c) => el("th", { scope: "col" }, c)))));
  const tbody = el("tbody");
  for (const r of rows) {
    tbody.append(
      el(
        "tr",
        {},
        cols.map((c) => el("td", {}, isScalar(r[c]) ? scalarText(r[c]) : compactJson(r[c]))),
      ),
    );
  }
  table.append(tbody);
  return el("div", { class: "table-wrap" }, table);
}

function compactJson(v) {
  if (Array.isArray(v) && v.every(isScalar) && v.length <= 8) return v.map(scalarText).join(", ");
  const s = JSON.stringify(v);
  return s.length > 160 ? s.slice(0, 157) + "…" : s;
}

/** Key/value table for an object's scalar members. */
export function kvTable(obj, caption) {
  const table = el("table", { class: "data kv" });
  if (caption) table.append(el("caption", {}, caption));
  const tbody = el("tbody");
  for (const [k, v] of Object.entries(obj)) {
    tbody.append(el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, isScalar(v) ? scalarText(v) : compactJson(v))));
  }
  table.append(tbody);
  return el("div", { class: "table-wrap" }, table);
}

function looksLikeImage(key, v) {
  return typeof v === "string" && (v.startsWith("data:image/") || (/png|image|figure/i.test(key) && /^[A-Za-z0-9+/=]{200,}$/.test(v)));
}

/**
 * Render any JSON value as headings + tables, recursing into nested objects up to `depth`.
 * Base64 PNGs become images; arrays of objects become tables.
 */
export function renderJson(value, title = null, depth = 0) {
  const wrap = el("section", { class: "json-block" });
  const H = `h${Math.min(6, 3 + depth)}`;
  if (title) wrap.append(el(H, {}, title));
  if (isScalar(value)) {
    wrap.append(el("p", {}, scalarText(value)));
    return wrap;
  }
  if (Array.isArray(value)) {
    if (value.length && value.every((r) => r && typeof r === "object" && !Array.isArray(r))) {
      wrap.append(arrayTable(value));
    } else {
      wrap.append(el("p", {}, compactJson(value)));
    }
    return wrap;
  }
  const scalars = {};
  const nested = [];
  for (const [k, v] of Object.entries(value)) {
    if (looksLikeImage(k, v)) {
      const src = v.startsWith("data:") ? v : `data:image/png;base64,${v}`;
      wrap.append(el("figure", { class: "report-figure" }, el("img", { src, alt: k }), el("figcaption", {}, k)));
    } else if (isScalar(v) || (Array.isArray(v) && v.every(isScalar) && v.length <= 8)) scalars[k] = v;
    else nested.push([k, v]);
  }
  if (Object.keys(scalars).length) wrap.append(kvTable(scalars));
  for (const [k, v] of nested) {
    if (depth >= 3) wrap.append(el("details", {}, el("summary", {}, k), el("pre", {}, JSON.stringify(v, null, 2))));
    else wrap.append(renderJson(v, k, depth + 1));
  }
  return wrap;
}

/** A labelled <progress> with a text readout; update with setProgress(). */
export function progressBar(label) {
  const bar = el("progress", { max: "1", value: "0", "aria-label": label });
  const text = el("span", { class: "progress-text" }, "0 %");
  return { node: el("div", { class: "progress" }, bar, text), bar, text };
}

export function setProgress(p, fraction, note = "") {
  if (fraction == null || !isFinite(fraction)) {
    p.bar.removeAttribute("value"); // indeterminate
    p.text.textContent = note || "working…";
    return;
  }
  const f = Math.max(0, Math.min(1, fraction));
  p.bar.value = f;
  p.text.textContent = `${Math.round(f * 100)} %${note ? " · " + note : ""}`;
}

/** Announce a short message to screen readers (and show it in the footer status line). */
export function announce(text) {
  const live = document.getElementById("live-status");
  if (live) live.textContent = text;
}
