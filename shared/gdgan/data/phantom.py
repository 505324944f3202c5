"""Procedural chest radiographs with NIH ChestX-ray14's label schema and prevalences.

The phantom stands in for the NIH images wherever they are not on the machine, so it has to
carry the signal the science depends on, not just the label table:

* **general labels change the general look** — women have a narrower, shorter thorax and breast
  shadows over the lower lung fields; AP views magnify the heart, put the scapulae over the lung
  fields, show more horizontal clavicles, poorer inspiration, lower contrast and (often) ECG
  electrodes;
* **Cardiomegaly is a cardiothoracic ratio (CTR) above 0.5**, drawn so that PA normals sit near
  0.42–0.45 while AP normals (heart magnified on the film) crowd towards the threshold and
  overlap PA cardiomegaly — subtle, as in real life, yet a clearly wider heart at 64 px;
* **other findings render** at their NIH rates (effusion blunts a costophrenic angle, nodules and
  masses are bright round opacities, pneumothorax a lucent rim without lung markings, ...);
* **patients have follow-ups** that share their anatomy and sex, so per-image splits would leak.

Rendering is vectorised over chunks of images: every anatomical layer is an analytic soft mask
evaluated on a (B, H, W) coordinate grid in float32, with per-image parameters broadcast as
(B, 1, 1); local layers are evaluated only inside their bounding box on the film and findings
only for the images that have them. All geometry lives in frame units ([-1, 1] across the
image) so sizes 32–256 show the same anatomy. Everything random comes from seeded generators:
same config, same images.
Per-image ground truth (CTR, heart and thorax widths in pixels, finding parameters) is kept in
``gt_*`` label columns for fidelity checks.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import stats

from gdgan.data.dataset import ImageDataset
from gdgan.data.nih import REQUIRED_CSV_COLUMNS
from gdgan.labels import (
    FINDINGS,
    N_FINDINGS,
    NIH_CARDIOMEGALY_BY_GROUP,
    NIH_FINDING_COUNTS,
    NIH_TOTAL_IMAGES,
    decode_findings,
    finding_index,
)

# --------------------------------------------------------------------------------------------
# NIH facts used as defaults
# --------------------------------------------------------------------------------------------
_GROUP_IMAGES = {k: v[1] for k, v in NIH_CARDIOMEGALY_BY_GROUP.items()}
NIH_FEMALE_FRACTION = (_GROUP_IMAGES[("F", "AP")] + _GROUP_IMAGES[("F", "PA")]) / NIH_TOTAL_IMAGES
# P(AP | gender) from the (gender, view) image counts.
NIH_AP_GIVEN_GENDER = {
    g: _GROUP_IMAGES[(g, "AP")] / (_GROUP_IMAGES[(g, "AP")] + _GROUP_IMAGES[(g, "PA")]) for g in ("M", "F")
}
NIH_CARDIOMEGALY_RATE = {k: pos / n for k, (pos, n) in NIH_CARDIOMEGALY_BY_GROUP.items()}
NIH_PREVALENCE = {name: NIH_FINDING_COUNTS[name] / NIH_TOTAL_IMAGES for name in FINDINGS}
NIH_PATIENTS = 30_805
NIH_IMAGES_PER_PATIENT = NIH_TOTAL_IMAGES / NIH_PATIENTS
NIH_AGE_MEAN, NIH_AGE_SD = 46.9, 16.6
CARDIOMEGALY = "Cardiomegaly"
CTR_THRESHOLD = 0.5

# Pixels rendered per vectorised chunk (8 images at 64 px): each float32 layer is then 128 kB
# and stays in cache, which measured ~2× faster than 128-image chunks. Part of the determinism
# contract (noise is drawn per chunk), so it is a constant rather than a config field.
RENDER_CHUNK_PIXELS = 8 * 64 * 64
# Size of the coarse noise grids that are interpolated to the image (lung texture, patches).
COARSE_GRID = 10
TEXTURE_GRID = 14
FINE_GRID = 22
# Thoracic-width physical size used for the NIH CSV's pixel spacing (mm across the frame).
FRAME_MM = 380.0


@dataclass(frozen=True)
class CardiacModel:
    """How the cardiothoracic ratio on the film is drawn (see module doc)."""

    normal_mean: float = 0.435  # PA normal CTR
    normal_sd: float = 0.03
    ap_magnification: tuple[float, float] = (1.10, 1.15)  # AP heart on film vs PA
    cardiomegaly_margin: float = 0.004  # smallest excess over 0.5 (keeps labels unambiguous)
    cardiomegaly_gamma_shape: float = 2.0  # CTR - 0.5 ~ Gamma(shape, scale): mean ≈ 0.57
    cardiomegaly_gamma_scale: float = 0.033
    cardiomegaly_max: float = 0.74
    patient_correlation: float = 0.8  # how much of a normal CTR's z-score is the patient's


CARDIAC = CardiacModel()


@dataclass(frozen=True)
class Anatomy:
    """Geometry (frame units, the image spans [-1, 1]) and densities of the rendered anatomy.

    Densities add up to a radiographic "attenuation" that the film curve maps to grey levels;
    the values were tuned by eye against NIH radiographs at 64 px (docs/img/phantom_vs_nih.png).
    """

    edge_px: float = 1.3  # anti-aliasing ramp of soft masks, in output pixels
    # body
    neck_half_width: float = 0.36
    shoulder_drop: float = 0.12  # shoulders reach trunk width this far above the lung apex...
    shoulder_span: float = 0.35  # ...rising from the neck over this height
    tissue: float = 0.50
    tissue_centre: float = 0.20
    abdomen: float = 0.08
    bowel_gas: float = 0.10
    # domes and lungs
    dome_peak: float = 0.45  # dome apex at this fraction of the thoracic half-width
    dome_medial_flat: float = 0.45
    apex_round: float = 0.6
    air: float = 0.62
    air_rim: float = 0.35  # lung air at the cage edge relative to the middle of the lung
    hilum_x: float = 0.28
    hilum_y: float = 0.52
    hilum_falloff: float = 9.0
    marking_base: float = 0.03
    vessel: float = 0.07
    vessel_spokes: float = 14.0  # radians of spoke phase per unit of sin(angle)
    marking_hilar: float = 0.12
    # heart and mediastinum
    heart_left_shift: float = 0.13
    heart_clear: float = 0.06  # lowest horizontal extreme of the heart above the left dome
    heart_density: float = 0.05
    med_half_width: float = 0.085
    med_into_heart: float = 0.65
    med_grow_start: float = 1.3  # in heart half-heights above the heart centre
    med_grow_span: float = 1.2
    knob_x: float = 0.13
    knob_y: float = 0.33
    knob_r: float = 0.07
    trachea_half_width: float = 0.03
    carina: float = 0.42
    trachea: float = 0.10
    # bones
    spine: float = 0.05
    vertebra: float = 0.085
    ribs_per_lung: float = 9.5
    rib_rise: float = -0.15
    rib_droop: float = 0.45
    rib_width: float = 0.18
    rib: float = 0.055
    rib_hidden: float = 0.7  # ribs fade over the heart and mediastinum
    clavicle_y: float = 0.17
    clavicle_ap_up: float = 0.07
    clavicle_slope_pa: float = 0.40
    clavicle_slope_ap: float = 0.10
    clavicle_half_thick: float = 0.035
    clavicle_len: float = 0.92
    clavicle: float = 0.09
    scapula_x_pa: float = 1.2
    scapula_x_ap: float = 0.80
    scapula_y: float = 0.36
    scapula_w: float = 0.20
    scapula_h: float = 0.34
    scapula: float = 0.08
    breast_x: float = 0.55
    breast_up: float = 0.22
    breast: float = 0.07
    gastric: float = 0.14
    # findings
    ptx_lucency: float = 0.10
    ptx_line: float = 0.18
    effusion_extra: float = 0.08
    nodule: float = 0.26
    mass: float = 0.30
    infiltration: float = 0.17
    pneumonia: float = 0.27
    consolidation: float = 0.32
    atelectasis: float = 0.26
    edema: float = 0.24
    fibrosis: float = 0.16
    pleural_thickening: float = 0.30
    hernia: float = 0.10
    hernia_gas: float = 0.26
    # film
    lead_rate: float = 0.45  # AP films with ECG electrodes
    lead_sites: tuple[tuple[float, float], ...] = ((-0.55, -0.55), (0.55, -0.55), (0.62, 0.25))
    lead_r: float = 0.03
    lead: float = 0.32
    film_gain: float = 1.0
    film_offset: float = 0.0


ANATOMY = Anatomy()


class PhantomError(ValueError):
    """A phantom configuration or export request that cannot be honoured."""


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
class PhantomConfig(BaseModel):
    """What to generate. Defaults reproduce NIH ChestX-ray14's label mix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(default=8000, ge=1, le=5_000_000, description="Number of images.")
    size: int = Field(default=64, ge=32, le=256, description="Image side in pixels.")
    seed: int = Field(default=0, ge=0, description="Same seed, same images and labels.")
    prevalence: dict[str, float] = Field(
        default_factory=dict,
        description="Per-finding prevalence overrides, e.g. {'Cardiomegaly': 0.2}. Cardiomegaly keeps "
        "NIH's (gender, view) ratios, scaled to the requested overall rate.",
    )
    female_fraction: float = Field(default=NIH_FEMALE_FRACTION, ge=0.0, le=1.0)
    ap_fraction: float | None = Field(
        default=None, ge=0.0, le=1.0, description="P(AP); None = NIH's per-gender rates."
    )
    images_per_patient: float = Field(default=NIH_IMAGES_PER_PATIENT, ge=1.0, le=100.0)
    noise: float = Field(default=1.0, ge=0.0, le=5.0, description="Scale of the quantum noise.")
    first_patient_id: int = Field(default=1, ge=0)

    @field_validator("prevalence")
    @classmethod
    def _check_prevalence(cls, v: dict[str, float]) -> dict[str, float]:
        for name, p in v.items():
            finding_index(name)  # LabelError (a ValueError) naming an unknown finding
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"prevalence of {name!r} must be within [0, 1], got {p}")
        return {k: float(p) for k, p in v.items()}

    def finding_rate(self, name: str) -> float:
        """Overall target prevalence of a finding (override or NIH's)."""
        return self.prevalence.get(name, NIH_PREVALENCE[name])

    def cardiomegaly_rate(self, gender: str, view: str) -> float:
        """Cardiomegaly rate in a (gender, view) group: NIH's, scaled to any override."""
        base = NIH_CARDIOMEGALY_RATE[(gender, view)]
        if CARDIOMEGALY not in self.prevalence:
            return base
        return min(1.0, base * self.prevalence[CARDIOMEGALY] / NIH_PREVALENCE[CARDIOMEGALY])


# --------------------------------------------------------------------------------------------
# labels and per-image parameters
# --------------------------------------------------------------------------------------------
def _patients(n: int, mean_images: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Patient index and follow-up number per image; images per patient ~ 1 + geometric.

    NIH's images-per-patient distribution is heavy-tailed (most patients have one image, a few
    have dozens); a geometric tail with NIH's mean (3.64) has the same shape to first order.
    """
    counts: list[np.ndarray] = []
    total = 0
    while total < n:
        m = max(16, int((n - total) / mean_images * 1.2) + 16)
        if mean_images > 1.0:
            c = rng.geometric(1.0 / mean_images, size=m)
        else:
            c = np.ones(m, dtype=np.int64)
        counts.append(c)
        total += int(c.sum())
    per = np.concatenate(counts)
    cum = np.cumsum(per)
    last = int(np.searchsorted(cum, n))  # patient holding image n-1
    per = per[: last + 1].copy()
    per[-1] -= int(cum[last] - n)
    patient = np.repeat(np.arange(len(per)), per)
    starts = np.concatenate([[0], np.cumsum(per)[:-1]])
    follow = np.arange(n) - np.repeat(starts, per)
    return patient, follow


def _trunc_normal_ppf(u: np.ndarray, mean: np.ndarray, sd: float, upper: float) -> np.ndarray:
    """Quantile u of N(mean, sd) truncated above ``upper`` (inverse-CDF, so it stays monotone in u)."""
    cap = stats.norm.cdf((upper - mean) / sd)
    return mean + sd * stats.norm.ppf(np.clip(u * cap, 1e-9, 1 - 1e-9))


def _draw_ctr(
    cardio: np.ndarray, ap: np.ndarray, patient_u: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """CTR on the film: < 0.5 for normals (AP magnified, piling up near 0.5), > 0.5 for cardiomegaly.

    A patient-level z-score makes a patient's normal follow-ups similar in heart size.
    """
    c = CARDIAC
    n = cardio.shape[0]
    rho = c.patient_correlation
    z = rho * patient_u + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
    u = stats.norm.cdf(z)
    mag = np.where(ap == 1, rng.uniform(*c.ap_magnification, size=n), 1.0)
    # Normal: true CTR ~ N(mean, sd) magnified on AP films, truncated below the threshold.
    normal = _trunc_normal_ppf(u, c.normal_mean * mag, c.normal_sd * mag.mean(), CTR_THRESHOLD - 0.002)
    u_c = np.clip(u, 1e-6, 1 - 1e-6)
    excess = stats.gamma.ppf(u_c, c.cardiomegaly_gamma_shape, scale=c.cardiomegaly_gamma_scale)
    big = np.minimum(CTR_THRESHOLD + c.cardiomegaly_margin + excess, c.cardiomegaly_max)
    return np.where(cardio == 1, big, normal)


def _draw_labels(cfg: PhantomConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = cfg.n
    patient, follow = _patients(n, cfg.images_per_patient, rng)
    n_pat = int(patient.max()) + 1
    female_p = (rng.random(n_pat) < cfg.female_fraction).astype(np.uint8)
    age_p = np.clip(np.rint(rng.normal(NIH_AGE_MEAN, NIH_AGE_SD, n_pat)), 1, 95).astype(np.int32)
    gender = female_p[patient]
    # Follow-ups age slowly: about a year every four studies.
    age = np.minimum(age_p[patient] + follow // 4, 99).astype(np.int32)
    if cfg.ap_fraction is None:
        p_ap = np.where(gender == 1, NIH_AP_GIVEN_GENDER["F"], NIH_AP_GIVEN_GENDER["M"])
    else:
        p_ap = np.full(n, cfg.ap_fraction)
    view = (rng.random(n) < p_ap).astype(np.uint8)

    findings = np.zeros((n, N_FINDINGS), dtype=np.uint8)
    for name in FINDINGS:
        j = finding_index(name)
        if name == CARDIOMEGALY:
            rate = np.zeros(n)
            for gi, g in enumerate(("M", "F")):
                for vi, v in enumerate(("PA", "AP")):
                    rate[(gender == gi) & (view == vi)] = cfg.cardiomegaly_rate(g, v)
        else:
            rate = np.full(n, cfg.finding_rate(name))
        findings[:, j] = rng.random(n) < rate

    pid = (patient + cfg.first_patient_id).astype(np.int64)
    image_index = np.array([f"{p:08d}_{f:03d}.png" for p, f in zip(pid, follow)])
    return {
        "image_index": image_index,
        "patient_id": pid,
        "follow_up": follow.astype(np.int32),
        "age": age,
        "gender": gender.astype(np.uint8),
        "view": view,
        "findings": findings,
        "_patient": patient,  # internal: 0-based patient index (dropped before returning)
    }


def _f32(a: np.ndarray | float) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


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
    p["ctr"] = _draw_ctr(has(CARDIOMEGALY).astype(np.uint8), ap.astype(np.uint8), ctr_u_p[pat], rng)
    p["rot"] = np.clip(rng.normal(0.0, 0.035, n), -0.1, 0.1)  # radians (~2°, max ~6°)
    p["shift_x"] = np.clip(rng.normal(0.0, 0.03, n), -0.06, 0.06)
    p["shift_y"] = np.clip(rng.normal(0.0, 0.03, n), -0.06, 0.06) + np.where(ap, 0.04, 0.0)
    p["zoom"] = np.clip(rng.normal(1.0, 0.03, n), 0.94, 1.06) * np.where(ap, 0.97, 1.0)
    # AP (bedside, often supine): poorer inspiration -> shorter lungs, higher domes.
    p["lung_len"] = p["lung_len"] * np.where(ap, rng.uniform(0.86, 0.94, n), rng.uniform(0.97, 1.03, n))
    p["contrast"] = rng.normal(1.0, 0.07, n) * np.where(ap, 0.74, 1.0)
    p["fog"] = np.where(ap, rng.uniform(0.06, 0.12, n), rng.uniform(0.0, 0.03, n))
    p["bright"] = rng.normal(0.0, 0.03, n)
    p["grain"] = rng.uniform(0.003, 0.009, n) * cfg.noise
    p["ap"] = ap.astype(np.float64)
    p["air"] = np.full(n, ANATOMY.air)
    p["mark_amp"] = np.full(n, 1.0)
    p["bubble"] = rng.uniform(0.0, 1.0, n) * (rng.random(n) < 0.7)
    p["vessel_phase"] = rng.uniform(0.0, 2.0 * np.pi, n_pat)[pat]
    # Bedside (AP) films often show ECG electrodes: bright dots over the chest wall.
    leads = ap & (rng.random(n) < ANATOMY.lead_rate)
    for k, (lx, ly) in enumerate(ANATOMY.lead_sites):
        p[f"lead{k}_x"] = np.where(leads, lx + rng.normal(0.0, 0.08, n), np.nan)
        p[f"lead{k}_y"] = np.where(leads, ly + rng.normal(0.0, 0.08, n), np.nan)

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
    return {k: v.astype(np.float32) for k, v in p.items()}


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
def _interp_matrix(coords: np.ndarray, g: int) -> np.ndarray:
    """(len(coords), g) bilinear weights of a coarse grid spanning [-1.1, 1.1]."""
    t = (np.asarray(coords, dtype=np.float64) + 1.1) / 2.2 * (g - 1)
    i0 = np.clip(np.floor(t).astype(int), 0, g - 2)
    w1 = np.clip(t - i0, 0.0, 1.0)
    m = np.zeros((len(t), g), dtype=np.float32)
    rows = np.arange(len(t))
    m[rows, i0] = 1.0 - w1
    m[rows, i0 + 1] = w1
    return m


def _upsample(coarse: np.ndarray, my: np.ndarray, mx: np.ndarray) -> np.ndarray:
    """(B, g, g) coarse noise -> (B, H, W) smooth field through separable interpolation."""
    return np.matmul(np.matmul(my, coarse), mx.T)


def _s(x: np.ndarray) -> np.ndarray:
    """Soft step: 1 where x >= 0.5, 0 where x <= -0.5, linear between (x in pixels of edge)."""
    return np.clip(x + 0.5, 0.0, 1.0)


@dataclass
class Noise:
    """Random fields for one chunk (drawn up front so a per-pixel loop can reuse them)."""

    texture: np.ndarray  # (B, g, g) lung-marking field
    patch: np.ndarray  # (B, g, g) patchy-opacity field
    fine: np.ndarray  # (B, G, G) reticular field (fibrosis)
    grain: np.ndarray  # (B, H, W) quantum noise, zero mean, unit variance

    @staticmethod
    def draw(rng: np.random.Generator, b: int, h: int, w: int) -> Noise:
        return Noise(
            texture=rng.standard_normal((b, TEXTURE_GRID, TEXTURE_GRID), dtype=np.float32),
            patch=rng.standard_normal((b, COARSE_GRID, COARSE_GRID), dtype=np.float32),
            fine=rng.standard_normal((b, FINE_GRID, FINE_GRID), dtype=np.float32),
            # uniform with unit variance: 3× cheaper to draw than normal, same look as film grain
            grain=(rng.random((b, h, w), dtype=np.float32) - np.float32(0.5)) * np.float32(math.sqrt(12.0)),
        )


def _box_slices(coords: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float) -> slice:
    """Index range of sorted pixel-centre ``coords`` within [min(lo) - margin, max(hi) + margin]."""
    a = int(np.searchsorted(coords, lo.min() - margin, side="left"))
    b = int(np.searchsorted(coords, hi.max() + margin, side="right"))
    return slice(a, max(a, b))


def render(p: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray, noise: Noise, size: int) -> np.ndarray:
    """Render B images (parameters ``p``, each (B,)) on pixel-centre coordinates ``xs``, ``ys``.

    ``xs``/``ys`` are sorted frame coordinates in [-1, 1]; passing one pixel's coordinates
    renders that pixel alone (the benchmark's naive baseline does exactly that and gets the same
    grey values). ``size`` sets the edge softness (about a pixel) so edges are anti-aliased at
    every resolution. Local layers (heart, clavicles, breasts, ...) are evaluated only inside
    their bounding box on the film, which is exact because soft masks are exactly zero a pixel
    beyond their edge. Returns float32 (B, len(ys), len(xs)) in [0, 1].
    """
    A = ANATOMY
    ew = np.float32(2.0 / size)  # one pixel in frame units
    inv_ew = np.float32(1.0) / (ew * A.edge_px)
    margin = 3.0 * float(ew)
    xs = _f32(xs)
    ys = _f32(ys)

    def c(name: str) -> np.ndarray:
        return p[name][:, None, None]

    # Patient placement: rotation, shift and zoom applied to the sampling grid.
    rot, zoom = p["rot"].astype(np.float64), p["zoom"].astype(np.float64)
    cos_r, sin_r = np.cos(rot), np.sin(rot)
    cr, sr = _f32(cos_r / zoom)[:, None, None], _f32(sin_r / zoom)[:, None, None]
    xsft = xs[None, None, :] - c("shift_x")
    ysft = ys[None, :, None] - c("shift_y")
    X = cr * xsft + sr * ysft
    Y = cr * ysft - sr * xsft
    AX = np.abs(X)

    zc, zs = zoom * cos_r, zoom * sin_r
    sx64, sy64 = p["shift_x"].astype(np.float64), p["shift_y"].astype(np.float64)

    def flat(v: np.ndarray | float) -> np.ndarray | float:
        return v if isinstance(v, float) else np.asarray(v, dtype=np.float64).reshape(-1)

    def box(
        xl: np.ndarray | float, xh: np.ndarray | float, yl: np.ndarray | float, yh: np.ndarray | float
    ) -> tuple[slice, slice, slice]:
        """(all images, rows, cols) of the film covering the patient-frame box [xl, xh] × [yl, yh].

        The film is a rotation + zoom + shift of the patient frame, so a box's extremes lie at
        its corners: a few (B,) operations instead of a search over pixels."""
        xl, xh, yl, yh = flat(xl), flat(xh), flat(yl), flat(yh)
        sxl, sxh, syl, syh = zs * xl, zs * xh, zs * yl, zs * yh
        rows = _box_slices(
            ys, sy64 + np.minimum(sxl, sxh) + zc * yl, sy64 + np.maximum(sxl, sxh) + zc * yh, margin
        )
        cols = _box_slices(
            xs, sx64 + zc * xl - np.maximum(syl, syh), sx64 + zc * xh - np.minimum(syl, syh), margin
        )
        return slice(None), rows, cols

    tw, lung_len, y_apex = c("tw"), c("lung_len"), c("y_apex")
    y_cp = y_apex + lung_len  # costophrenic angles
    ap = c("ap")
    big = 4.0  # beyond the frame, in patient-frame units (for boxes open on a side)

    # ---- body outline: neck, sloping shoulders, trunk ---------------------------------------------
    bw_trunk = tw + c("body_extra")
    tt = np.clip((Y - (y_apex - A.shoulder_drop)) * (1.0 / A.shoulder_span), 0.0, 1.0)
    bw = A.neck_half_width + (bw_trunk - A.neck_half_width) * (tt * (2.0 - tt))  # rounded shoulders
    body = _s((bw - AX) * inv_ew)
    rel = np.minimum(AX / bw, 1.0)
    D = body * (A.tissue + A.tissue_centre * (1.0 - rel * rel))

    # ---- diaphragm domes (right = image left, higher; atelectasis lifts its side) --------------------
    dome_h = c("dome_h")
    atel_side = np.sign(np.nan_to_num(c("atel_x")))
    atel_lift = np.nan_to_num(c("atel_lift"))
    dome_top_l = y_cp - dome_h - atel_lift * (atel_side > 0)  # image right (patient left)
    dome_top_r = y_cp - dome_h - c("dome_right_up") - atel_lift * (atel_side < 0)
    leftf = (X < 0).astype(np.float32)
    dome_top = dome_top_l + (dome_top_r - dome_top_l) * leftf
    xdc = A.dome_peak * tw
    q = (AX - xdc) * (1.0 / (tw - xdc))
    q = np.maximum(q, q * A.dome_medial_flat)  # flatter medially (q < 0)
    y_dome = dome_top + (y_cp - dome_top) * (q * q)
    above = _s((y_dome - Y) * inv_ew)
    abd = box(-big, big, np.minimum(dome_top_l, dome_top_r), big)
    below = (1.0 - above[abd]) * body[abd]
    D[abd] += A.abdomen * below

    # ---- lungs inside the rib cage ---------------------------------------------------------------------
    t = np.maximum((y_cp - Y) * (1.0 / lung_len), 0.0)
    t2 = t * t
    rx = AX * (1.0 / tw)
    rc = rx * rx + t2 * (A.apex_round + (1.0 - A.apex_round) * t2)  # < 1 inside the cage
    depth = np.clip(1.0 - rc, 0.0, 1.0)
    cage = np.minimum(depth * (tw * 0.5 * inv_ew), 1.0)
    cage_above = cage * above

    # ---- heart (rotated ellipse; horizontal extent = CTR × thoracic width) ----------------------------
    heart_w = c("ctr") * 2.0 * tw
    phi = c("heart_tilt")
    cphi, sphi = np.cos(phi), np.sin(phi)
    asp = c("heart_aspect")
    ext = np.sqrt(cphi * cphi + asp * asp * sphi * sphi)  # horizontal half-extent for a = 1
    a = heart_w * 0.5 / ext
    b = a * asp
    vert = np.sqrt(a * a * sphi * sphi + b * b * cphi * cphi)
    hx = A.heart_left_shift * heart_w  # more of the heart lies to the patient's left (image right)
    # The widest points of a tilted ellipse lie at different heights (clinically the CTR adds the
    # right and left extents measured at their own levels); the lower of the two sits
    # ``heart_clear`` above the left dome so the whole CTR stays visible, the rest of the heart
    # sinks into the diaphragm shadow.
    dy_ext = (a * a - b * b) * sphi * cphi / (0.5 * heart_w)
    hy = dome_top_l - np.abs(dy_ext) - A.heart_clear
    solid = np.zeros_like(D)
    hb = box(hx - 0.5 * heart_w, hx + 0.5 * heart_w, hy - vert, hy + vert)
    dx, dy = X[hb] - hx, Y[hb] - hy
    u = (dx * cphi + dy * sphi) / a
    v = (dy * cphi - dx * sphi) / b
    heart = _s((1.0 - np.sqrt(u * u + v * v)) * (b * inv_ew))
    solid[hb] = heart
    D[hb] += A.heart_density * heart * above[hb]

    # ---- mediastinum, trachea, aortic knob ----------------------------------------------------------------
    # the upper mediastinum widens smoothly into the cardiac silhouette (no "ball on a stick")
    # (its centre drifts towards the heart's, so the left border runs knob -> ventricle smoothly;
    # it stays inside the heart's horizontal extent, so the CTR is still the ellipse's)
    med_top = A.med_half_width
    med_low = np.maximum(A.med_into_heart * 0.5 * heart_w, med_top)
    mb = box(0.015 - med_low, hx + med_low, -big, big)
    grow = np.clip((Y[mb] - (hy - A.med_grow_start * vert)) * (1.0 / (A.med_grow_span * vert)), 0.0, 1.0)
    grow = grow * (2.0 - grow)
    med_w = med_top + (med_low - med_top) * grow
    med_c = 0.015 + (hx - 0.015) * grow
    med = _s((med_w - np.abs(X[mb] - med_c)) * inv_ew)
    np.maximum(solid[mb], med, out=solid[mb])
    kx, ky = A.knob_x * tw, y_apex + A.knob_y * lung_len
    kb = box(kx - A.knob_r, kx + A.knob_r, ky - A.knob_r, ky + A.knob_r)
    knob = _s((A.knob_r - np.sqrt((X[kb] - kx) ** 2 + (Y[kb] - ky) ** 2)) * inv_ew)
    np.maximum(solid[kb], knob, out=solid[kb])
    lung = cage_above * (1.0 - solid)
    y_car = y_apex + A.carina * lung_len
    trb = box(0.01 - A.trachea_half_width, 0.01 + A.trachea_half_width, -big, y_car)
    trachea = _s((A.trachea_half_width - np.abs(X[trb] - 0.01)) * inv_ew) * _s((y_car - Y[trb]) * inv_ew)
    D[trb] -= A.trachea * trachea

    # ---- lung density: air, thicker in the middle of each lung, hilar vessels ------------------------
    # Evaluated inside the lung box only: ``lung`` is exactly 0 beyond |X| = tw, above the apex
    # and below the costophrenic angles (the domes never drop below them).
    tex = _upsample(noise.texture, _interp_matrix(ys, TEXTURE_GRID), _interp_matrix(xs, TEXTURE_GRID))
    lb = box(-tw, tw, y_apex, y_cp)
    texl = tex[lb]
    hdy = Y[lb] - (y_apex + A.hilum_y * lung_len)
    hd2 = (AX[lb] - A.hilum_x * tw) ** 2 + hdy * hdy
    hilar = 1.0 / (1.0 + hd2 * A.hilum_falloff)
    # lung markings: vessels radiating from each hilum (spokes in the direction sin(angle) =
    # dy / r, broken up by the texture field), fading towards the periphery, plus hilar shadows
    spokes = np.cos(hdy * (A.vessel_spokes / np.sqrt(hd2 + 1e-4)) + c("vessel_phase"))
    vessels = np.clip(spokes * 3.0 - 2.0 + 0.6 * texl, 0.0, 1.0)
    marks_l = A.marking_base * np.maximum(texl, 0.0) + A.vessel * np.sqrt(hilar) * vessels
    marks_l = c("mark_amp") * (marks_l + A.marking_hilar * hilar)
    air = c("air") * (A.air_rim + (1.0 - A.air_rim) * np.sqrt(depth[lb]))
    marks = np.zeros_like(D)
    marks[lb] = marks_l
    air_removed = np.zeros_like(D)
    air_removed[lb] = lung[lb] * (air - marks_l)
    D[lb] -= air_removed[lb]

    # ---- bones: spine, ribs, clavicles, scapulae ---------------------------------------------------------
    sw = c("spine_w")
    sb = box(-sw, sw, -big, big)
    vph = (Y[sb] - y_apex) * (1.0 / (A.vertebra * lung_len))
    vmod = 0.6 + 0.8 * np.abs(vph - np.floor(vph) - 0.5)  # vertebral bodies and discs
    D[sb] += A.spine * _s((sw - AX[sb]) * inv_ew) * vmod * body[sb]

    rb = box(-big, big, y_apex - 0.05 * lung_len, y_cp)
    spacing = lung_len * (1.0 / A.ribs_per_lung)
    rxb = rx[rb]
    curve = lung_len * (rxb * (A.rib_rise + A.rib_droop * rxb))  # posterior ribs: up, then down laterally
    ph = (Y[rb] - y_apex - curve) * (1.0 / spacing) + c("rib_phase")
    fr = np.abs(ph - np.floor(ph) - 0.5)
    rib_band = _s((A.rib_width - fr) * (spacing * inv_ew))
    rib_zone = np.clip((1.12 - rc[rb]) * 4.0, 0.0, 1.0) * above[rb]
    D[rb] += A.rib * rib_band * rib_zone * body[rb] * (1.0 - A.rib_hidden * solid[rb])

    # clavicles: sternal end near the midline, lateral end higher on PA, nearly horizontal on AP
    slope = A.clavicle_slope_pa + (A.clavicle_slope_ap - A.clavicle_slope_pa) * ap
    cl0 = y_apex + A.clavicle_y - A.clavicle_ap_up * ap + slope * 0.10
    cl_end = tw * A.clavicle_len
    th = A.clavicle_half_thick
    cb = box(-cl_end, cl_end, cl0 - slope * cl_end - th, cl0 - slope * 0.07 + th)
    axc = AX[cb]
    clav = (
        _s((th - np.abs(Y[cb] - (cl0 - slope * axc))) * inv_ew)
        * _s((axc - 0.07) * inv_ew)
        * _s((cl_end - axc) * inv_ew)
    )
    D[cb] += A.clavicle * clav

    # scapulae: lateral to the lungs on PA (rotated forward), over the upper lung fields on AP
    scx = tw * (A.scapula_x_pa + (A.scapula_x_ap - A.scapula_x_pa) * ap)
    scy = y_apex + A.scapula_y * lung_len
    sch = A.scapula_h * lung_len
    scb = box(-scx - A.scapula_w, scx + A.scapula_w, scy - sch, scy + sch)
    e = ((AX[scb] - scx) * (1.0 / A.scapula_w)) ** 2 + ((Y[scb] - scy) / sch) ** 2
    D[scb] += A.scapula * _s((1.0 - e) * (A.scapula_w * 0.5 * inv_ew)) * body[scb]

    # breast shadows (F only): soft tissue over the lower lung fields with a curved lower border
    fem = np.flatnonzero(p["breast"] > 0)
    if fem.size:
        pf = {k: p[k][fem] for k in ("breast_r", "tw", "y_apex", "lung_len", "breast")}
        twf = pf["tw"][:, None, None]
        br = pf["breast_r"][:, None, None] * twf
        bx = A.breast_x * twf
        by = (pf["y_apex"] + pf["lung_len"])[:, None, None] - A.breast_up
        br_all = c("breast_r") * tw
        by_all = y_cp - A.breast_up
        _, brr, _ = box(-big, big, by_all - br_all, by_all + br_all)
        Xf, Yf = AX[fem, brr], Y[fem, brr]
        be = ((Xf - bx) / (br * 1.2)) ** 2 + ((Yf - by) / br) ** 2
        breast = np.clip((1.0 - be) * 3.0, 0.0, 1.0) * np.clip((Yf - by + br) / (1.5 * br), 0.0, 1.0)
        D[fem, brr] += (A.breast * pf["breast"][:, None, None]) * breast * body[fem, brr]

    # bowel gas and the gastric bubble under the left hemidiaphragm (image right)
    D[abd] -= A.bowel_gas * np.clip(tex[abd] - 0.6, 0.0, 1.0) * below
    gx, gy = 0.42 * tw, dome_top_l + 0.11
    gb = box(gx - 0.10, gx + 0.10, gy - 0.06, gy + 0.06)
    gbd = ((X[gb] - gx) * (1.0 / 0.10)) ** 2 + ((Y[gb] - gy) * (1.0 / 0.06)) ** 2
    D[gb] -= (A.gastric * c("bubble")) * np.clip(1.0 - gbd, 0.0, 1.0) * (1.0 - above[gb])

    # ---- findings ------------------------------------------------------------------------------------
    _add_findings(D, p, X, Y, AX, tw, y_cp, rc, lung, cage_above, air_removed, marks, noise, xs, ys, inv_ew)

    # ---- film: response curve, contrast, fog, brightness, noise ----------------------------------------
    k1 = A.film_gain * c("contrast")
    k0 = 0.5 + (A.film_offset - 0.5) * c("contrast") + c("fog") + c("bright")
    img = D * k1
    img += k0
    img += c("grain") * noise.grain
    return np.clip(img, 0.0, 1.0, out=img)


def _add_findings(
    D: np.ndarray,
    p: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    AX: np.ndarray,
    tw: np.ndarray,
    y_cp: np.ndarray,
    rc: np.ndarray,
    lung: np.ndarray,
    cage_above: np.ndarray,
    air_removed: np.ndarray,
    marks: np.ndarray,
    noise: Noise,
    xs: np.ndarray,
    ys: np.ndarray,
    inv_ew: np.float32,
) -> None:
    """Add the density of findings to ``D`` in place, computing each only for the images that
    have it (most images have none of a given finding, so this is the cheap path)."""
    A = ANATOMY

    def rows(key: str) -> np.ndarray:
        return np.flatnonzero(~np.isnan(p[key]))

    def c(key: str, idx: np.ndarray) -> np.ndarray:
        return p[key][idx][:, None, None]

    def on_side(idx: np.ndarray, side: np.ndarray) -> np.ndarray:
        """1 on the finding's side (-1 image left, +1 image right, 0 both), else 0."""
        return ((side == 0) | (X[idx] * side > 0)).astype(np.float32)

    # Pneumothorax: a lucent rim along the chest wall without lung markings, edged by the
    # visceral pleural line.
    idx = rows("ptx_size")
    if idx.size:
        size_, twi, rci = c("ptx_size", idx), tw[idx], rc[idx]
        rin = (1.0 - size_) ** 2
        side = on_side(idx, c("ptx_side", idx))
        ring = _s((rci - rin) * (twi * 0.5 * inv_ew)) * side
        pleural = np.clip(1.0 - np.abs(rci - rin) * (twi * 0.5 * inv_ew), 0.0, 1.0) * side
        li = lung[idx]
        D[idx] += li * (A.ptx_line * pleural - ring * (marks[idx] + A.ptx_lucency))

    # Effusion: fluid fills the costophrenic angle with a meniscus rising laterally.
    idx = rows("eff_level")
    if idx.size:
        lev, twi = c("eff_level", idx), tw[idx]
        axi = AX[idx]
        rx = axi / twi
        y_fl = y_cp[idx] - lev * (0.45 + 0.55 * rx * rx * rx)
        fluid = _s((Y[idx] - y_fl) * inv_ew * 0.5) * on_side(idx, c("eff_side", idx))
        fluid *= _s((twi * 1.02 - axi) * inv_ew)
        D[idx] += fluid * (air_removed[idx] + A.effusion_extra * cage_above[idx])

    # Nodule / mass: bright round opacities.
    for key, amp in (("nod", A.nodule), ("mass", A.mass)):
        idx = rows(f"{key}_r")
        if idx.size:
            d = np.sqrt((X[idx] - c(f"{key}_x", idx)) ** 2 + (Y[idx] - c(f"{key}_y", idx)) ** 2)
            D[idx] += amp * _s((c(f"{key}_r", idx) - d) * inv_ew)

    # Patchy (infiltration, pneumonia) and confluent (consolidation) opacities.
    patch: np.ndarray | None = None
    for key, amp, hardness, patchy in (
        ("inf", A.infiltration, 1.5, 0.65),
        ("pna", A.pneumonia, 2.5, 0.6),
        ("cons", A.consolidation, 1.3, 0.35),
    ):
        idx = rows(f"{key}_r")
        if not idx.size:
            continue
        if patch is None:
            patch = _upsample(noise.patch, _interp_matrix(ys, COARSE_GRID), _interp_matrix(xs, COARSE_GRID))
        r = c(f"{key}_r", idx)
        d2 = ((X[idx] - c(f"{key}_x", idx)) ** 2 + (Y[idx] - c(f"{key}_y", idx)) ** 2) / (r * r)
        blob = np.clip((1.0 - d2) * hardness, 0.0, 1.0)
        tex = np.clip(0.5 + 0.7 * patch[idx], 0.0, 1.0)
        D[idx] += amp * blob * (1.0 - patchy + patchy * tex) * lung[idx]

    # Atelectasis: a tilted plate-like band (its hemidiaphragm is raised in the geometry).
    idx = rows("atel_r")
    if idx.size:
        xi, yi = X[idx] - c("atel_x", idx), Y[idx] - c("atel_y", idx)
        band = _s((0.04 - np.abs(yi - 0.25 * xi)) * inv_ew)
        band = band * np.clip(1.0 - np.abs(xi) / c("atel_r", idx), 0.0, 1.0)
        D[idx] += A.atelectasis * band * lung[idx]

    # Edema: bilateral perihilar ("bat-wing") haze.
    idx = rows("edema")
    if idx.size:
        hy = c("y_apex", idx) + A.hilum_y * c("lung_len", idx)
        hd2 = ((AX[idx] - A.hilum_x * tw[idx]) * (1.0 / 0.5)) ** 2 + ((Y[idx] - hy) * (1.0 / 0.6)) ** 2
        D[idx] += A.edema * c("edema", idx) * np.clip(1.0 - hd2, 0.0, 1.0) * lung[idx]

    # Fibrosis: reticular network (zero crossings of a fine noise field), lower and peripheral.
    idx = rows("fib")
    if idx.size:
        fine = _upsample(noise.fine[idx], _interp_matrix(ys, FINE_GRID), _interp_matrix(xs, FINE_GRID))
        net = np.clip(1.0 - np.abs(fine) * 2.5, 0.0, 1.0)
        zone = np.clip(rc[idx] * 1.3 - 0.2, 0.0, 1.0)
        D[idx] += A.fibrosis * c("fib", idx) * net * zone * lung[idx]

    # Pleural thickening: a dense rim along one lateral chest wall.
    idx = rows("pt_thick")
    if idx.size:
        th = c("pt_thick", idx) / tw[idx]
        rim = _s((rc[idx] - (1.0 - th) ** 2) * tw[idx] * 0.5 * inv_ew) * on_side(idx, c("pt_side", idx))
        D[idx] += A.pleural_thickening * rim * cage_above[idx]

    # ECG electrodes (AP): small, very bright discs.
    idx = rows("lead0_x")
    if idx.size:
        for k in range(len(A.lead_sites)):
            d = np.sqrt((X[idx] - c(f"lead{k}_x", idx)) ** 2 + (Y[idx] - c(f"lead{k}_y", idx)) ** 2)
            D[idx] += A.lead * _s((A.lead_r - d) * inv_ew)

    # Hiatus hernia: round retrocardiac opacity with an air-fluid level.
    idx = rows("hernia_r")
    if idx.size:
        hr = c("hernia_r", idx)
        hcy = y_cp[idx] - 0.30
        d = np.sqrt((X[idx] - 0.05 * tw[idx]) ** 2 + (Y[idx] - hcy) ** 2)
        disc = _s((hr - d) * inv_ew)
        gas = disc * _s((hcy - 0.25 * hr - Y[idx]) * inv_ew)
        D[idx] += A.hernia * disc - A.hernia_gas * gas


def _pixel_coords(size: int) -> np.ndarray:
    return ((np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0).astype(np.float32)


def render_images(
    params: dict[str, np.ndarray], size: int, seed: int, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """Render all images of a parameter table, chunk by chunk, to uint8 (N, size, size)."""
    n = len(next(iter(params.values())))
    out = np.empty((n, size, size), dtype=np.uint8)
    coords = _pixel_coords(size)
    chunk_n = max(1, RENDER_CHUNK_PIXELS // (size * size))
    for k, start in enumerate(range(0, n, chunk_n)):
        stop = min(n, start + chunk_n)
        rng = np.random.default_rng([seed, 0x9A7, k])  # one stream per chunk: deterministic by seed
        noise = Noise.draw(rng, stop - start, size, size)
        chunk = {key: v[start:stop] for key, v in params.items()}
        img = render(chunk, coords, coords, noise, size)
        np.multiply(img, 255.0, out=img)
        np.rint(img, out=img)
        out[start:stop] = img.astype(np.uint8)
        if progress is not None:
            progress(stop, n)
    return out


# --------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------
GT_COLUMNS = {
    # name in the label table: parameter it comes from (frame units unless noted)
    "gt_rotation": "rot",
    "gt_shift_x": "shift_x",
    "gt_shift_y": "shift_y",
    "gt_effusion_side": "eff_side",
    "gt_effusion_level": "eff_level",
    "gt_nodule_x": "nod_x",
    "gt_nodule_y": "nod_y",
    "gt_nodule_r": "nod_r",
    "gt_mass_x": "mass_x",
    "gt_mass_y": "mass_y",
    "gt_mass_r": "mass_r",
    "gt_pneumothorax_side": "ptx_side",
    "gt_pneumothorax_size": "ptx_size",
    "gt_infiltration_x": "inf_x",
    "gt_infiltration_y": "inf_y",
    "gt_consolidation_x": "cons_x",
    "gt_consolidation_y": "cons_y",
    "gt_pneumonia_x": "pna_x",
    "gt_pneumonia_y": "pna_y",
    "gt_atelectasis_x": "atel_x",
    "gt_atelectasis_y": "atel_y",
    "gt_edema": "edema",
    "gt_fibrosis": "fib",
    "gt_pleural_thickening_side": "pt_side",
    "gt_pleural_thickening": "pt_thick",
    "gt_hernia_r": "hernia_r",
    "gt_breast": "breast",
}


def phantom_labels(
    config: PhantomConfig, findings: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Label table and rendering parameters, without rendering (cheap; used by tests and tools).

    ``findings`` (N, 14) replaces the drawn findings to make *counterfactuals*: every random draw
    has the same shape whatever the labels, so the same seed gives the same patients, anatomy and
    noise, and only what the changed findings control differs (e.g. the same chest with and
    without an effusion). Cardiomegaly is a CTR drawn from the label, so it changes the heart only.
    """
    rng = np.random.default_rng([config.seed, 0x1AB])
    lab = _draw_labels(config, rng)
    if findings is not None:
        findings = np.asarray(findings)
        if findings.shape != lab["findings"].shape:
            raise PhantomError(f"findings must have shape {lab['findings'].shape}, got {findings.shape}")
        lab["findings"] = (findings > 0).astype(np.uint8)
    params = _draw_params(config, lab, rng)
    lab.pop("_patient")
    half = config.size / 2.0
    # Widths in pixels of the rendered image (the zoom scales both, the ratio is the CTR).
    thorax_px = 2.0 * params["tw"] * params["zoom"] * half
    lab["gt_ctr"] = params["ctr"].astype(np.float32)
    lab["gt_thorax_width"] = thorax_px.astype(np.float32)
    lab["gt_heart_width"] = (thorax_px * params["ctr"]).astype(np.float32)
    for col, key in GT_COLUMNS.items():
        lab[col] = params[key].astype(np.float32)
    return lab, params


def make_phantom(
    config: PhantomConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    findings: np.ndarray | None = None,
) -> ImageDataset:
    """Generate a phantom dataset: images (N, size, size) uint8 plus NIH-schema labels and gt_* truth.

    ``progress(done, total)`` is called after each rendered chunk; ``findings`` makes a
    counterfactual set (see :func:`phantom_labels`).
    """
    config = config or PhantomConfig()
    labels, params = phantom_labels(config, findings)
    images = render_images(params, config.size, config.seed, progress=progress)
    return ImageDataset(images=images, labels=labels, config={"source": "phantom", **config.model_dump()})


# --------------------------------------------------------------------------------------------
# NIH on-disk format
# --------------------------------------------------------------------------------------------
NIH_CSV_NAME = "Data_Entry_2017.csv"
# NIH's own file has these columns: the adapter's required ones plus the original geometry.
NIH_CSV_COLUMNS = (
    *REQUIRED_CSV_COLUMNS,
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
)
NIH_IMAGES_PER_FOLDER = 10_000


def write_nih_format(
    dataset: ImageDataset,
    out_dir: str | Path,
    layout: str = "flat",
    write_size: int | None = None,
    per_folder: int = NIH_IMAGES_PER_FOLDER,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write PNGs and ``Data_Entry_2017.csv`` as NIH ships them; returns the CSV path.

    ``layout="flat"`` puts every PNG in ``out_dir/images/``; ``layout="nih"`` uses NIH's
    ``images_001/images/...`` folders of ``per_folder`` files. ``write_size`` upscales (bicubic)
    so an ingest benchmark decodes and resizes realistic amounts of data.
    """
    from PIL import Image

    from gdgan.imaging import to_png_bytes

    if layout not in ("flat", "nih"):
        raise PhantomError(f"layout must be 'flat' or 'nih', got {layout!r}")
    if write_size is not None and not 8 <= write_size <= 4096:
        raise PhantomError(f"write_size must be within [8, 4096], got {write_size}")
    if per_folder < 1:
        raise PhantomError(f"per_folder must be >= 1, got {per_folder}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lab = dataset.labels
    n = len(dataset)
    side = write_size or dataset.size
    spacing = FRAME_MM / side
    csv_path = out / NIH_CSV_NAME
    with csv_path.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(NIH_CSV_COLUMNS)
        for i in range(n):
            name = str(lab["image_index"][i])
            sub = "images" if layout == "flat" else f"images_{i // per_folder + 1:03d}/images"
            folder = out / sub
            if i == 0 or (layout == "nih" and i % per_folder == 0):
                folder.mkdir(parents=True, exist_ok=True)
            img = np.asarray(dataset.images[i])
            if write_size is not None and write_size != img.shape[0]:
                big = Image.fromarray(img).resize((write_size, write_size), Image.Resampling.BICUBIC)
                img = np.asarray(big)
            (folder / name).write_bytes(to_png_bytes(img))
            age = int(lab["age"][i])
            wr.writerow(
                [
                    name,
                    decode_findings(lab["findings"][i]),
                    int(lab["follow_up"][i]),
                    int(lab["patient_id"][i]),
                    age if age >= 0 else "",
                    "F" if int(lab["gender"][i]) == 1 else "M",
                    "AP" if int(lab["view"][i]) == 1 else "PA",
                    side,
                    side,
                    f"{spacing:.6f}",
                    f"{spacing:.6f}",
                ]
            )
            if progress is not None and (i + 1) % 256 == 0:
                progress(i + 1, n)
    if progress is not None:
        progress(n, n)
    return csv_path
