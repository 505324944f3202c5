// Entry point: hash router (#/generate, #/jobs, #/models/<id>, #/reports/<id>), token field,
// service health line. Hash routing keeps the gateway a plain static-file server.

import { getToken, setToken } from "./api.js";
import * as generate from "./generate.js";
import * as jobs from "./jobs.js";
import * as models from "./models.js";
import * as reports from "./reports.js";

const PAGES = { generate, jobs, models, reports };
const TITLES = { generate: "Generate", jobs: "Jobs", models: "Models", reports: "Reports" };
const initialised = new Set();
let current = null;

function parseHash() {
  const parts = (location.hash || "#/generate").replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = PAGES[parts[0]] ? parts[0] : "generate";
  return { name, params: parts.slice(1).filter(Boolean) };
}

function route() {
  const { name, params } = parseHash();
  if (current && current !== name) PAGES[current].hide?.();
  for (const key of Object.keys(PAGES)) {
    document.getElementById(`page-${key}`).hidden = key !== name;
  }
  document.querySelectorAll("nav a[data-page]").forEach((a) => {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  document.title = `${TITLES[name]} — GDGAN`;
  const page = PAGES[name];
  if (!initialised.has(name)) {
    page.init();
    initialised.add(name);
  }
  const changed = current !== name;
  current = name;
  page.show(params);
  if (changed) {
    // Move focus to the page heading so keyboard and screen-reader users land on the new page.
    const h = document.querySelector(`#page-${name} h1`);
    if (h && document.activeElement !== document.body) {
      h.setAttribute("tabindex", "-1");
      h.focus({ preventScroll: true });
    }
  }
}

function initToken() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("api-token");
  const state = document.getElementById("token-state");
  const refresh = () => {
    state.textContent = getToken() ? "set" : "none";
    state.classList.toggle("on", !!getToken());
  };
  input.value = getToken();
  refresh();
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    input.classList.remove("invalid");
    refresh();
    document.getElementById("token-panel").removeAttribute("open");
    // Re-run the current page so anything that failed with 401 loads now.
    route();
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    input.value = "";
    setToken("");
    refresh();
  });
}

async function health() {
  const out = document.getElementById("health");
  try {
    const r = await fetch("/readyz", { cache: "no-store" });
    out.textContent = r.ok ? "service ready" : `service not ready (${r.status})`;
    out.className = r.ok ? "ok" : "warn";
  } catch {
    out.textContent = "service unreachable";
    out.className = "warn";
  }
}

initToken();
window.addEventListener("hashchange", route);
route();
health();
setInterval(health, 30_000);
