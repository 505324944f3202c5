// "New dataset" form: every source POST /v1/datasets accepts, with fields built from the JSON
// Schema the API publishes for it (GET /v1/datasets/sources). The page holds no list of sources
// or options of its own, so a source or option added to the API appears here unchanged; the
// server stays the authority on values (a 422 names the field, shown inline).

import { getJson } from "./api.js";
import { clear, el } from "./ui.js";

let sources = []; // [{source, description, path_fields, json_schema}]

/** A property's schema without its `null` alternative: {schema, nullable}. */
function unwrap(prop) {
  if (!prop.anyOf) return { schema: prop, nullable: false };
  const rest = prop.anyOf.filter((p) => p.type !== "null");
  const nullable = rest.length < prop.anyOf.length;
  if (rest.length === 1) return { schema: { ...rest[0], default: prop.default, description: prop.description ?? rest[0].description }, nullable };
  return { schema: { anyOf: rest, default: prop.default, description: prop.description }, nullable };
}

/** How a property is edited: choice, boolean, integer, object (JSON), list (comma text) or text. */
export function kindOf(prop) {
  const { schema } = unwrap(prop);
  if (schema.enum) return "choice";
  if (schema.type === "boolean") return "boolean";
  if (schema.type === "integer" || schema.type === "number") return "integer";
  if (schema.type === "object") return "object";
  if (schema.type === "array" || schema.anyOf) return "list";
  return "text";
}

/** A field's label: the schema's title (pydantic's "Test Labels", or one set like "Images"). */
function label(name, prop = {}) {
  return prop.title || name.replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
}

function fieldFor(src, name, prop, required) {
  const { schema, nullable } = unwrap(prop);
  const id = `ds-${name.replaceAll("_", "-")}`;
  const kind = kindOf(prop);
  const isPath = (src.path_fields || []).includes(name);
  const help = [schema.description || prop.description || "", isPath ? "Path inside the import folder." : ""].filter(Boolean).join(" ");
  const attrs = { id, name, dataset: { kind }, "aria-describedby": help ? `${id}-help` : null, required: required || null };
  let input;
  if (kind === "choice") {
    input = el("select", attrs);
    if (!required && (nullable || schema.default == null)) input.append(el("option", { value: "" }, "—"));
    for (const v of schema.enum) input.append(el("option", { value: String(v), selected: v === schema.default }, String(v)));
  } else if (kind === "boolean") {
    input = el("input", { ...attrs, type: "checkbox", checked: schema.default === true });
    return el("div", { class: "field check" }, input, el("label", { for: id }, label(name, prop)), help ? el("small", { id: `${id}-help` }, help) : null);
  } else if (kind === "integer") {
    input = el("input", { ...attrs, type: "number", inputmode: "numeric", min: schema.minimum ?? schema.exclusiveMinimum ?? null, max: schema.maximum ?? null, value: schema.default ?? "" });
  } else if (kind === "object") {
    input = el("textarea", { ...attrs, rows: "3", placeholder: '{"path": "file", "findings": {"list": {"column": "labels"}}}' });
  } else {
    const ph = kind === "list" ? (typeof schema.default === "string" ? `${schema.default}, or a comma list` : "comma-separated") : "";
    input = el("input", { ...attrs, type: "text", placeholder: ph || null, value: kind === "list" && typeof schema.default === "string" ? schema.default : "" });
  }
  return el("div", { class: "field" }, el("label", { for: id }, label(name, prop)), input, help ? el("small", { id: `${id}-help` }, help) : null);
}

function current(form) {
  return sources.find((s) => s.source === form.elements.source.value);
}

function render(form) {
  const box = form.querySelector("#ds-fields");
  clear(box);
  const src = current(form);
  if (!src) return;
  document.getElementById("ds-source-help").textContent = src.description || "";
  const schema = src.json_schema;
  const required = new Set(schema.required || []);
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    if (name === "source") continue;
    box.append(fieldFor(src, name, prop, required.has(name)));
  }
}

/** The request body from the form; a field that cannot be read gives {error, field}. */
export function readBody(form) {
  const src = current(form);
  const body = { source: src.source };
  for (const input of form.querySelectorAll("#ds-fields [name]")) {
    const kind = input.dataset.kind;
    const name = input.name;
    if (kind === "boolean") {
      body[name] = input.checked;
      continue;
    }
    const raw = input.value.trim();
    if (raw === "") continue; // the API's default
    if (kind === "integer") body[name] = Number(raw);
    else if (kind === "choice") body[name] = typeof unwrap(src.json_schema.properties[name]).schema.enum[0] === "number" ? Number(raw) : raw;
    else if (kind === "object") {
      try {
        body[name] = JSON.parse(raw);
      } catch {
        return { error: `${label(name)} must be JSON, e.g. {"path": "file", ...}`, field: name };
      }
    } else if (kind === "list") {
      const { schema } = unwrap(src.json_schema.properties[name]);
      const consts = (schema.anyOf || []).map((s) => s.const).filter((c) => c !== undefined);
      body[name] = consts.includes(raw) ? raw : raw.toLowerCase() === "none" ? [] : raw.split(",").map((x) => x.trim()).filter(Boolean);
    } else body[name] = raw;
  }
  return { body };
}

export function hasSources() {
  return sources.length > 0;
}

/** Fill the source list from the API and build the chosen source's fields. */
export async function initDatasetForm(form) {
  const body = await getJson("/v1/datasets/sources");
  sources = body.sources || [];
  const select = form.elements.source;
  const cur = select.value;
  clear(select);
  for (const s of sources) select.append(el("option", { value: s.source }, s.source));
  select.value = sources.some((s) => s.source === cur) ? cur : sources[0]?.source ?? "";
  if (!select.dataset.bound) {
    select.addEventListener("change", () => render(form));
    select.dataset.bound = "1";
  }
  render(form);
}
