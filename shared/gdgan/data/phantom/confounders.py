"""Confounders of real films: support devices concentrated in AP (bedside) films, poor
inspiration, and patient rotation. None of them is a finding, but each changes what a
classifier sees near the heart, so it has to learn past them as it does on NIH films.

Draw and render are separate: :func:`draw_confounders` makes per-image parameters (NaN where a
device is absent, like the findings), :func:`add_devices` adds the radio-opaque devices to the
density map for the images that have them.
"""

from __future__ import annotations

import math

import numpy as np

from gdgan.data.phantom.config import ANATOMY, PhantomConfig
from gdgan.data.phantom.texture import _s

# Films with lines/tubes carry, independently: an endotracheal tube, a nasogastric tube and a
# central venous line, each with this probability (at least one is always drawn).
DEVICE_MIX = {"ett": 0.55, "ng": 0.45, "cvc": 0.70}
# Poor inspiration: lungs this much shorter, a normal heart this much broader on the film.
LOW_INSPIRATION_LUNG = (0.80, 0.90)
LOW_INSPIRATION_HEART = (1.03, 1.08)
# Mediastinal shift per radian of rotation about the long axis (frame units).
AXIAL_SHIFT_PER_RAD = 0.8


def draw_confounders(cfg: PhantomConfig, ap: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image confounder parameters. Every draw has the same shape whatever the labels, so
    counterfactuals keep their devices, inspiration and rotation."""
    n = ap.shape[0]
    p: dict[str, np.ndarray] = {}
    p["rot"] = np.clip(rng.normal(0.0, 0.035, n), -0.1, 0.1)  # in-plane tilt, radians (~2°, max ~6°)
    axial = np.clip(rng.normal(0.0, math.radians(cfg.rotation_deg), n), -0.3, 0.3)
    p["axial_rot"] = axial
    p["axial_shift"] = AXIAL_SHIFT_PER_RAD * np.sin(axial)

    low_rate = np.where(ap, cfg.low_inspiration_rate_ap, cfg.low_inspiration_rate_pa)
    low = rng.random(n) < low_rate
    p["low_inspiration"] = low.astype(np.float64)
    p["inspiration"] = np.where(low, rng.uniform(*LOW_INSPIRATION_LUNG, n), 1.0)
    p["heart_magnify"] = np.where(low, rng.uniform(*LOW_INSPIRATION_HEART, n), 1.0)

    dev_rate = np.where(ap, cfg.device_rate_ap, cfg.device_rate_pa)
    dev = rng.random(n) < dev_rate
    kinds = {k: rng.random(n) < r for k, r in DEVICE_MIX.items()}
    none_drawn = dev & ~(kinds["ett"] | kinds["ng"] | kinds["cvc"])
    kinds["cvc"] = kinds["cvc"] | none_drawn
    p["ett_tip"] = np.where(dev & kinds["ett"], rng.uniform(0.06, 0.20, n), np.nan)  # above the carina
    p["ng_end"] = np.where(dev & kinds["ng"], rng.uniform(0.15, 0.30, n), np.nan)  # below the dome
    cvc_side = np.where(rng.random(n) < 0.75, -1.0, 1.0)  # right internal jugular most often
    p["cvc_side"] = np.where(dev & kinds["cvc"], cvc_side, np.nan)
    p["cvc_tip"] = np.where(dev & kinds["cvc"], rng.uniform(0.32, 0.50, n), np.nan)  # of lung length
    pacer = rng.random(n) < cfg.pacemaker_rate
    p["pacer_side"] = np.where(pacer, np.where(rng.random(n) < 0.8, 1.0, -1.0), np.nan)  # left chest mostly
    p["pacer_y"] = np.where(pacer, rng.uniform(0.05, 0.18, n), np.nan)

    # Bedside (AP) films often show ECG electrodes: bright dots over the chest wall.
    leads = ap & (rng.random(n) < cfg.ecg_lead_rate_ap)
    for k, (lx, ly) in enumerate(ANATOMY.lead_sites):
        p[f"lead{k}_x"] = np.where(leads, lx + rng.normal(0.0, 0.08, n), np.nan)
        p[f"lead{k}_y"] = np.where(leads, ly + rng.normal(0.0, 0.08, n), np.nan)
    p["devices"] = (dev | pacer).astype(np.float64)
    return p


def _tube(
    X: np.ndarray, Y: np.ndarray, x_of_y: np.ndarray, y0: np.ndarray, y1: np.ndarray, inv_ew: np.float32
) -> np.ndarray:
    """A thin radio-opaque tube following x = x_of_y between heights y0 and y1 (soft edges)."""
    hw = ANATOMY.tube_half_width
    line = np.clip((hw - np.abs(X - x_of_y)) * inv_ew + 0.5, 0.0, 1.0)
    return line * _s((Y - y0) * inv_ew) * _s((y1 - Y) * inv_ew)


def add_devices(
    D: np.ndarray,
    p: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    tw: np.ndarray,
    y_apex: np.ndarray,
    lung_len: np.ndarray,
    dome_top: np.ndarray,
    inv_ew: np.float32,
) -> None:
    """Add tubes, lines, pacemakers and ECG electrodes to ``D`` in place, per image that has them."""
    A = ANATOMY

    def rows(key: str) -> np.ndarray:
        return np.flatnonzero(~np.isnan(p[key]))

    def c(key: str, idx: np.ndarray) -> np.ndarray:
        return p[key][idx][:, None, None]

    def at(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return a[idx] if a.shape[0] > 1 else a

    # Endotracheal tube: down the trachea, tip a few cm above the carina.
    idx = rows("ett_tip")
    if idx.size:
        Xi, Yi = X[idx], Y[idx]
        y_car = at(y_apex, idx) + A.carina * at(lung_len, idx)
        x = 0.01 + c("axial_shift", idx)
        D[idx] += A.tube * _tube(Xi, Yi, x, np.float32(-2.0), y_car - c("ett_tip", idx), inv_ew)

    # Nasogastric tube: down the oesophagus, then left under the dome into the stomach.
    idx = rows("ng_end")
    if idx.size:
        Xi, Yi = X[idx], Y[idx]
        dt = at(dome_top, idx)
        bend = np.clip((Yi - dt + 0.05) * (1.0 / 0.35), 0.0, 1.0)
        x = 0.04 + c("axial_shift", idx) + 0.35 * at(tw, idx) * bend * bend
        D[idx] += A.tube * _tube(Xi, Yi, x, np.float32(-2.0), dt + c("ng_end", idx), inv_ew)

    # Central venous line: from the neck down the jugular vein into the superior vena cava.
    idx = rows("cvc_side")
    if idx.size:
        Xi, Yi = X[idx], Y[idx]
        ya, ll, twi = at(y_apex, idx), at(lung_len, idx), at(tw, idx)
        side = c("cvc_side", idx)
        y_top, y_tip = ya - 0.35, ya + c("cvc_tip", idx) * ll
        t = np.clip((Yi - y_top) / (y_tip - y_top), 0.0, 1.0)
        t = t * t * (3.0 - 2.0 * t)
        x = side * (0.30 * twi + (0.07 - 0.30 * twi) * t) + c("axial_shift", idx)
        D[idx] += A.tube * _tube(Xi, Yi, x, y_top, y_tip, inv_ew)

    # Pacemaker: a dense generator below the clavicle and a lead curving down into the heart.
    idx = rows("pacer_side")
    if idx.size:
        Xi, Yi = X[idx], Y[idx]
        ya, ll, twi = at(y_apex, idx), at(lung_len, idx), at(tw, idx)
        side = c("pacer_side", idx)
        gx, gy = side * 0.62 * twi, ya + c("pacer_y", idx)
        gen = ((Xi - gx) * (1.0 / 0.09)) ** 2 + ((Yi - gy) * (1.0 / 0.065)) ** 2
        D[idx] += A.pacer * np.clip((1.0 - gen) * 4.0, 0.0, 1.0)
        y_end = ya + 0.80 * ll
        t = np.clip((Yi - gy) / (y_end - gy), 0.0, 1.0)
        x = gx + (0.12 * twi - gx) * np.sqrt(t)
        D[idx] += (A.tube * 0.8) * _tube(Xi, Yi, x, gy, y_end, inv_ew)

    # ECG electrodes: small, very bright discs.
    idx = rows("lead0_x")
    if idx.size:
        for k in range(len(A.lead_sites)):
            d = np.sqrt((X[idx] - c(f"lead{k}_x", idx)) ** 2 + (Y[idx] - c(f"lead{k}_y", idx)) ** 2)
            D[idx] += A.lead * _s((A.lead_r - d) * inv_ew)
