// Loss curves, drawn with uPlot (vendored in ../vendor/uplot with its MIT licence; no CDN).
// One chart per training phase (stage 1, stage 2, ACGAN): each phase counts its own steps, and
// their loss terms differ. The same chart serves live curves (Jobs page, points appended from the
// job's progress events) and stored curves (Models page, GET /v1/models/{id}/losses).

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { el } from "./ui.js";

// Colour-blind-safe palette (Okabe–Ito), readable on white.
const COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B"];
const WIDTH = 420, HEIGHT = 200;

const PHASE_NAMES = { stage1: "Stage 1", stage2: "Stage 2", acgan: "ACGAN" };
export const phaseName = (p) => PHASE_NAMES[p] || p;

/**
 * A chart of one phase's curves: {step: [...], <name>: [...]}; `kind` "loss" or "quality" (the
 * harness's measures: same drawing, other words). Returns {node, names, update(curves)}.
 */
export function lossChart(phase, curves, { width = WIDTH, height = HEIGHT, kind = "loss" } = {}) {
  // fit narrow windows (phones): never wider than the viewport less the page's padding
  width = Math.max(200, Math.min(width, (document.documentElement.clientWidth || width) - 48));
  // sorted, so a loss keeps its colour between the live chart and the stored one
  const names = Object.keys(curves).filter((k) => k !== "step").sort();
  const what = kind === "quality" ? "quality measures" : "losses";
  const caption = el("figcaption", {}, `${phaseName(phase)} ${what} by step`);
  const holder = el("div", { class: "chart-canvas" });
  const node = el("figure", {
    class: kind === "quality" ? "loss-chart quality-chart" : "loss-chart",
    role: "img",
    [kind === "quality" ? "data-quality-phase" : "data-phase"]: phase,
    "aria-label": `${phaseName(phase)} ${what}: ${names.join(", ")}`,
  }, holder, caption);
  const opts = {
    width,
    height,
    legend: { show: true, live: false }, // names only: the values under the cursor would jump
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: false } },
    axes: [{ label: "step" }, { label: kind === "quality" ? "value" : "loss" }],
    series: [{ label: "step" }, ...names.map((n, i) => ({ label: n, stroke: COLOURS[i % COLOURS.length], width: 1.5 }))],
  };
  const data = () => [curves.step || [], ...names.map((n) => curves[n] || [])];
  const plot = new uPlot(opts, data(), holder);
  node.dataset.points = String((curves.step || []).length);
  return {
    node,
    names,
    update(next) {
      curves = next;
      plot.setData(data());
      node.dataset.points = String((curves.step || []).length);
    },
  };
}

/** Charts for every phase of {phase: curves}, in a row that wraps. */
export function lossCharts(phases, opts) {
  const wrap = el("div", { class: "loss-charts" });
  for (const [phase, curves] of Object.entries(phases || {})) {
    if ((curves.step || []).length) wrap.append(lossChart(phase, curves, opts).node);
  }
  return wrap;
}
