"""Label table: patients and follow-ups, the NIH label mix, and the truth behind each label
(text-mined labels are wrong at audited rates; see :func:`draw_truth`)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from gdgan.data.phantom.config import (
    CARDIAC,
    CARDIOMEGALY,
    CTR_THRESHOLD,
    NIH_AGE_MEAN,
    NIH_AGE_SD,
    NIH_AP_GIVEN_GENDER,
    PhantomConfig,
)
from gdgan.labels import FINDINGS, N_FINDINGS, finding_index


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
    cardio: np.ndarray,
    ap: np.ndarray,
    patient_u: np.ndarray,
    rng: np.random.Generator,
    magnify: np.ndarray | None = None,
    borderline: np.ndarray | None = None,
    reader_sd: float = 0.0,
) -> np.ndarray:
    """CTR on the film: < 0.5 for normals (AP magnified, piling up near 0.5), > 0.5 for cardiomegaly.

    A patient-level z-score makes a patient's normal follow-ups similar in heart size. ``magnify``
    (per image, ≥ 1) is any further apparent enlargement of a normal heart (poor inspiration);
    ``borderline`` images are the ones a reader could call either way: their CTR lies within
    a half-normal of SD ``reader_sd`` of the threshold, on their true side.
    """
    c = CARDIAC
    n = cardio.shape[0]
    rho = c.patient_correlation
    z = rho * patient_u + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
    u = stats.norm.cdf(z)
    mag = np.where(ap == 1, rng.uniform(*c.ap_magnification, size=n), 1.0)
    if magnify is not None:
        mag = mag * magnify
    # Normal: true CTR ~ N(mean, sd) magnified on AP films, truncated below the threshold.
    normal = _trunc_normal_ppf(u, c.normal_mean * mag, c.normal_sd * mag.mean(), CTR_THRESHOLD - 0.002)
    u_c = np.clip(u, 1e-6, 1 - 1e-6)
    excess = stats.gamma.ppf(u_c, c.cardiomegaly_gamma_shape, scale=c.cardiomegaly_gamma_scale)
    big = np.minimum(CTR_THRESHOLD + c.cardiomegaly_margin + excess, c.cardiomegaly_max)
    ctr = np.where(cardio == 1, big, normal)
    near = np.abs(rng.standard_normal(n)) * reader_sd  # drawn always: same stream whatever the labels
    if borderline is not None and reader_sd > 0:
        edge = np.where(cardio == 1, CTR_THRESHOLD + 0.001 + near, CTR_THRESHOLD - 0.002 - near)
        ctr = np.where(borderline, edge, ctr)
    return ctr


def draw_truth(cfg: PhantomConfig, lab: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The truth behind each Cardiomegaly label, with the label mix kept exactly.

    Labels are drawn first (NIH's rates per group), then the truth given the label: a labelled
    image is a true cardiomegaly with probability PPV; an unlabelled one with
    q = r·PPV·(1−sens) / (sens·(1−r)), so that the labels' sensitivity is ``sens`` (r: the group's
    label rate). A share of the mislabelled images are borderline hearts (reader disagreement
    near CTR 0.5); the rest are text-mining errors at any heart size. A separate random stream
    keeps every other draw identical to the clean phantom's.
    """
    rng = np.random.default_rng([seed, 0x7E, 1])
    n = lab["findings"].shape[0]
    label = lab["findings"][:, finding_index(CARDIOMEGALY)].astype(bool)
    s = cfg.label_noise
    ppv = 1.0 - s * (1.0 - cfg.label_ppv)
    sens = 1.0 - s * (1.0 - cfg.label_sensitivity)
    r = np.zeros(n)
    for gi, g in enumerate(("M", "F")):
        for vi, v in enumerate(("PA", "AP")):
            r[(lab["gender"] == gi) & (lab["view"] == vi)] = cfg.cardiomegaly_rate(g, v)
    q = np.clip(r * ppv * (1.0 - sens) / (sens * np.maximum(1.0 - r, 1e-9)), 0.0, 1.0)
    u = rng.random(n)
    truth = np.where(label, u < ppv, u < q)
    flipped = truth != label
    borderline = flipped & (rng.random(n) < cfg.borderline_share)
    return {"truth": truth.astype(np.uint8), "flipped": flipped.astype(np.uint8), "borderline": borderline}


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
