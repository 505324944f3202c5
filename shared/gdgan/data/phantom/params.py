"""Per-image rendering parameters drawn from the label table (anatomy, placement, exposure,
findings); patient anatomy is shared by follow-ups."""

from __future__ import annotations

import numpy as np

from gdgan.data.phantom.config import (
    ANATOMY,
    CARDIOMEGALY,
    FLAT_SHIFT_SD,
    FLAT_ZOOM_SD,
    LOOKS,
    RADIOGRAPH,
    PhantomConfig,
)
from gdgan.data.phantom.confounders import draw_confounders
from gdgan.data.phantom.film_look import apply_film_look, draw_film_look
from gdgan.data.phantom.labels import _draw_ctr
from gdgan.data.phantom.radiograph import draw_look_extras
from gdgan.data.phantom.texture import draw_film
from gdgan.labels import finding_index


def _draw_params(
    cfg: PhantomConfig, lab: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per-image rendering parameters (N,) float32; patient anatomy shared by follow-ups."""
    n = cfg.n
    pat = lab["_patient"]
    n_pat = int(pat.max()) + 1
    fem_p = np.zeros(n_pat, dtype=bool)
    fem_p[pat] = lab["gender"] == 1
    ap = lab["view"] == 1
    f = lab["findings"].astype(bool)

    def has(name: str) -> np.ndarray:
        return f[:, finding_index(name)]

    # -- patient anatomy (shared by follow-ups) -------------------------------------------------
    tw_p = np.where(fem_p, rng.normal(0.73, 0.035, n_pat), rng.normal(0.80, 0.035, n_pat))
    len_p = np.where(fem_p, rng.normal(1.29, 0.05, n_pat), rng.normal(1.38, 0.05, n_pat))
    ctr_u_p = rng.standard_normal(n_pat)
    p = {
        "tw": np.clip(tw_p, 0.62, 0.92)[pat],
        "lung_len": np.clip(len_p, 1.1, 1.55)[pat],
        "y_apex": rng.normal(-0.75, 0.03, n_pat)[pat],
        "body_extra": rng.uniform(0.12, 0.40, n_pat)[pat],
        "breast": np.where(fem_p, rng.uniform(0.7, 1.3, n_pat), 0.0)[pat],
        "breast_r": rng.uniform(0.34, 0.46, n_pat)[pat],
        "heart_tilt": rng.normal(0.42, 0.08, n_pat)[pat],
        "heart_aspect": rng.uniform(0.56, 0.66, n_pat)[pat],
        "dome_h": rng.uniform(0.16, 0.24, n_pat)[pat],
        "dome_right_up": rng.normal(0.05, 0.015, n_pat)[pat],
        "rib_phase": rng.uniform(0.0, 1.0, n_pat)[pat],
        "spine_w": rng.uniform(0.06, 0.08, n_pat)[pat],
    }
    # -- per image ----------------------------------------------------------------------------------
    conf = draw_confounders(cfg, ap, rng)
    p.update(conf)
    truth = lab.get("_truth_cm", has(CARDIOMEGALY).astype(np.uint8))
    borderline = lab.get("_borderline")
    p["ctr"] = _draw_ctr(
        np.asarray(truth, dtype=np.uint8),
        ap.astype(np.uint8),
        ctr_u_p[pat],
        rng,
        magnify=conf["heart_magnify"],
        borderline=borderline,
        reader_sd=cfg.reader_ctr_sd,
    )
    t = min(cfg.texture, 1.0)
    look = LOOKS[cfg.look]
    sxy = FLAT_SHIFT_SD + (look.shift_sd - FLAT_SHIFT_SD) * t
    p["shift_x"] = np.clip(rng.normal(0.0, sxy, n), -2.0 * sxy, 2.0 * sxy)
    p["shift_y"] = np.clip(rng.normal(0.0, sxy, n), -2.0 * sxy, 2.0 * sxy) + np.where(ap, 0.04, 0.0)
    # NIH films are framed tighter than the first phantom's (calibrated look: the thorax fills
    # most of the frame), and less consistently (nih_matched look).
    zsd = FLAT_ZOOM_SD + (look.zoom_sd - FLAT_ZOOM_SD) * t
    p["zoom"] = np.clip(rng.normal(1.0 + look.zoom_extra * t, zsd, n), *look.zoom_clip) * np.where(
        ap, 0.97, 1.0
    )
    # AP (bedside, often supine): poorer inspiration -> shorter lungs, higher domes.
    p["lung_len"] = p["lung_len"] * np.where(ap, rng.uniform(0.86, 0.94, n), rng.uniform(0.97, 1.03, n))
    p["lung_len"] = p["lung_len"] * conf["inspiration"]
    p["contrast"] = rng.normal(1.0, 0.07, n) * np.where(ap, 0.74, 1.0)
    p["fog"] = np.where(ap, rng.uniform(0.06, 0.12, n), rng.uniform(0.0, 0.03, n))
    p["bright"] = rng.normal(0.0, 0.03, n)
    p["grain"] = rng.uniform(0.003, 0.009, n) * cfg.noise
    p["ap"] = ap.astype(np.float64)
    p["air"] = np.full(n, ANATOMY.air)
    p["mark_amp"] = np.full(n, 1.0)
    p["bubble"] = rng.uniform(0.0, 1.0, n) * (rng.random(n) < 0.7)
    p["vessel_phase"] = rng.uniform(0.0, 2.0 * np.pi, n_pat)[pat]
    p.update(draw_film(cfg, ap, rng))

    # -- findings that change geometry or global parameters ------------------------------------------
    emph = has("Emphysema")
    p["lung_len"] = np.where(emph, p["lung_len"] * 1.08, p["lung_len"])
    p["dome_h"] = np.where(emph, p["dome_h"] * 0.5, p["dome_h"])
    p["air"] = np.where(emph, ANATOMY.air * 1.15, p["air"])
    p["mark_amp"] = np.where(emph, 0.45, p["mark_amp"])
    fib = has("Fibrosis")
    p["lung_len"] = np.where(fib, p["lung_len"] * 0.94, p["lung_len"])

    def side(mask: np.ndarray) -> np.ndarray:
        """-1 = image left (patient right), +1 = image right, NaN when absent."""
        return np.where(mask, np.where(rng.random(n) < 0.5, -1.0, 1.0), np.nan)

    def nan_unless(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.where(mask, values, np.nan)

    eff = has("Effusion")
    p["eff_side"] = np.where(eff & (rng.random(n) < 0.3), 0.0, side(eff))  # 0 = bilateral
    p["eff_level"] = nan_unless(eff, rng.uniform(0.28, 0.60, n))
    for name, key, rmin, rmax in (("Nodule", "nod", 0.035, 0.06), ("Mass", "mass", 0.09, 0.16)):
        m = has(name)
        s = side(m)
        p[f"{key}_x"] = nan_unless(m, s * rng.uniform(0.30, 0.78, n) * p["tw"])
        p[f"{key}_y"] = nan_unless(m, p["y_apex"] + p["lung_len"] * rng.uniform(0.22, 0.62, n))
        p[f"{key}_r"] = nan_unless(m, rng.uniform(rmin, rmax, n))
    ptx = has("Pneumothorax")
    p["ptx_side"] = side(ptx)
    p["ptx_size"] = nan_unless(ptx, rng.uniform(0.18, 0.40, n))
    zones = (
        ("Infiltration", "inf"),
        ("Consolidation", "cons"),
        ("Pneumonia", "pna"),
        ("Atelectasis", "atel"),
    )
    for name, key in zones:
        m = has(name)
        s = side(m)
        p[f"{key}_x"] = nan_unless(m, s * rng.uniform(0.35, 0.70, n) * p["tw"])
        p[f"{key}_y"] = nan_unless(m, p["y_apex"] + p["lung_len"] * rng.uniform(0.35, 0.80, n))
        p[f"{key}_r"] = nan_unless(m, rng.uniform(0.14, 0.26, n))
    # Atelectasis: volume loss raises the hemidiaphragm on its side.
    atel = has("Atelectasis")
    p["atel_lift"] = nan_unless(atel, rng.uniform(0.04, 0.09, n))
    p["edema"] = nan_unless(has("Edema"), rng.uniform(0.7, 1.2, n))
    p["fib"] = nan_unless(fib, rng.uniform(0.7, 1.2, n))
    pt = has("Pleural_Thickening")
    p["pt_side"] = side(pt)
    p["pt_thick"] = nan_unless(pt, rng.uniform(0.035, 0.07, n))
    her = has("Hernia")
    p["hernia_r"] = nan_unless(her, rng.uniform(0.10, 0.15, n))
    p["emph"] = nan_unless(emph, np.ones(n))
    p.pop("heart_magnify")
    p.update(draw_look_extras(cfg, n))
    if look.radiograph:
        # NIH films show the lungs taller, narrower and reaching higher, under higher-arched
        # domes, than the first phantom drew them. Changed after every draw and every
        # ground-truth position, so only the drawing moves (and the thorax and heart widths in
        # pixels; the CTR is unchanged).
        p["y_apex"] = p["y_apex"] - RADIOGRAPH.apex_up
        p["lung_len"] = p["lung_len"] * RADIOGRAPH.lung_scale
        p["tw"] = p["tw"] * RADIOGRAPH.thorax_scale
        p["dome_h"] = p["dome_h"] * RADIOGRAPH.dome_scale
        # bedside (AP) films are hazier than the first phantom drew them (scatter, soft tissue)
        p["contrast"] = p["contrast"] * np.where(ap, RADIOGRAPH.ap_contrast, 1.0)
        p["fog"] = p["fog"] + np.where(ap, RADIOGRAPH.ap_fog, 0.0)
        p["grain"] = p["grain"] * RADIOGRAPH.grain_scale
    if look.film:
        apply_film_look(p, draw_film_look(cfg, ap))
    return {k: np.asarray(v).astype(np.float32) for k, v in p.items()}
