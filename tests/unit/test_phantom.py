"""The phantom dataset: label mix, ground truth, rendered signal, patients, NIH export."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from gdgan.data.dataset import ImageDataset
from gdgan.data.phantom import (
    ANATOMY,
    CTR_THRESHOLD,
    NIH_CSV_COLUMNS,
    NIH_CSV_NAME,
    NIH_IMAGES_PER_PATIENT,
    NIH_PREVALENCE,
    PhantomConfig,
    PhantomError,
    _pixel_coords,
    make_phantom,
    phantom_labels,
    render_images,
    write_nih_format,
)
from gdgan.data.phantom import texture as film
from gdgan.data.phantom.config import FLAT_SHIFT_SD, FLAT_ZOOM_SD, LOOKS
from gdgan.labels import (
    FINDINGS,
    NIH_CARDIOMEGALY_BY_GROUP,
    NIH_FINDING_COUNTS,
    NIH_TOTAL_IMAGES,
    LabelError,
    decode_findings,
    finding_index,
)
from PIL import Image
from pydantic import ValidationError
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

CM = finding_index("Cardiomegaly")
# Films without what hides geometry (devices over the midline, rotation off the spine, texture).
GEOMETRY_ONLY = dict(
    texture=0.0,
    rotation_deg=0.0,
    device_rate_ap=0.0,
    device_rate_pa=0.0,
    pacemaker_rate=0.0,
    ecg_lead_rate_ap=0.0,
)
ONLY_CM = {name: 0.0 for name in FINDINGS if name != "Cardiomegaly"}


def _binomial_ok(count: int, n: int, p: float, z: float = 5.0) -> bool:
    """count is within z standard deviations of n·p (a two-sided binomial check)."""
    sd = np.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= z * sd + 1


@pytest.fixture(scope="module")
def big_labels() -> dict[str, np.ndarray]:
    # Labels only (no rendering): 200k rows in well under a second.
    lab, _ = phantom_labels(PhantomConfig(n=200_000, size=64, seed=11))
    return lab


@pytest.fixture(scope="module")
def small() -> ImageDataset:
    return make_phantom(PhantomConfig(n=600, size=32, seed=3))


# --- determinism and shapes -------------------------------------------------------------------
def test_same_seed_same_dataset_different_seed_differs() -> None:
    a = make_phantom(PhantomConfig(n=40, size=32, seed=5))
    b = make_phantom(PhantomConfig(n=40, size=32, seed=5))
    c = make_phantom(PhantomConfig(n=40, size=32, seed=6))
    np.testing.assert_array_equal(a.images, b.images)
    for k in a.labels:
        np.testing.assert_array_equal(a.labels[k], b.labels[k])
    assert not np.array_equal(a.images, c.images)


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_sizes(size: int) -> None:
    ds = make_phantom(PhantomConfig(n=3, size=size, seed=0))
    assert ds.images.shape == (3, size, size) and ds.images.dtype == np.uint8
    assert ds.size == size
    assert 0.55 * size < ds.labels["gt_thorax_width"].mean() < 1.0 * size
    # Images use the grey range (not blank, not saturated).
    assert ds.images.std() > 25


def test_size_and_fields_are_validated_with_their_names() -> None:
    with pytest.raises(ValidationError, match="size"):
        PhantomConfig(size=16)
    with pytest.raises(ValidationError, match="n"):
        PhantomConfig(n=0)
    with pytest.raises(ValidationError, match="bogus"):
        PhantomConfig(bogus=1)  # type: ignore[call-arg]


def test_dataset_passes_validation_and_has_ground_truth(small: ImageDataset) -> None:
    ds = ImageDataset(images=small.images, labels=small.labels)  # re-validates
    assert len(ds) == 600
    for col in ("gt_ctr", "gt_heart_width", "gt_thorax_width", "gt_effusion_level", "gt_nodule_r"):
        assert ds.labels[col].dtype == np.float32 and ds.labels[col].shape == (600,)
    assert ds.general().shape == (600, 2) and ds.detail().shape == (600, 14)
    sub = ds.subset(np.arange(10))
    assert len(sub) == 10
    # Finding parameters are present exactly when the finding is.
    for col, name in (("gt_effusion_level", "Effusion"), ("gt_nodule_r", "Nodule"), ("gt_mass_r", "Mass")):
        has = ds.labels["findings"][:, finding_index(name)] == 1
        np.testing.assert_array_equal(~np.isnan(ds.labels[col]), has)


def test_progress_is_reported() -> None:
    calls: list[tuple[int, int]] = []
    make_phantom(PhantomConfig(n=70, size=32, seed=0), progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (70, 70)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# --- label mix ----------------------------------------------------------------------------------
def test_gender_and_view_follow_nih(big_labels: dict[str, np.ndarray]) -> None:
    g, v = big_labels["gender"], big_labels["view"]
    n = len(g)
    # Gender is per patient, so the image-level spread is wider than binomial: use a looser z.
    assert abs((g == 0).mean() - 0.565) < 0.01
    assert _binomial_ok(int((v == 0).sum()), n, 0.600, z=6)
    for (gs, vs), (_, count) in NIH_CARDIOMEGALY_BY_GROUP.items():
        share = count / NIH_TOTAL_IMAGES
        got = ((g == ("M", "F").index(gs)) & (v == ("PA", "AP").index(vs))).mean()
        assert abs(got - share) < 0.012, (gs, vs, got, share)


def test_cardiomegaly_rate_per_gender_view_group(big_labels: dict[str, np.ndarray]) -> None:
    g, v, cm = big_labels["gender"], big_labels["view"], big_labels["findings"][:, CM]
    for (gs, vs), (pos, count) in NIH_CARDIOMEGALY_BY_GROUP.items():
        sel = (g == ("M", "F").index(gs)) & (v == ("PA", "AP").index(vs))
        assert _binomial_ok(int(cm[sel].sum()), int(sel.sum()), pos / count), (gs, vs)
    assert _binomial_ok(int(cm.sum()), len(cm), 2776 / 112_120)
    # Higher in AP and in women, as in NIH.
    rate = {
        (gs, vs): cm[(g == gi) & (v == vi)].mean()
        for gi, gs in enumerate("MF")
        for vi, vs in enumerate(("PA", "AP"))
    }
    assert rate[("F", "AP")] > rate[("M", "PA")]


@pytest.mark.parametrize("name", [f for f in FINDINGS if f != "Cardiomegaly"])
def test_other_findings_at_nih_counts(big_labels: dict[str, np.ndarray], name: str) -> None:
    col = big_labels["findings"][:, finding_index(name)]
    assert _binomial_ok(int(col.sum()), len(col), NIH_FINDING_COUNTS[name] / NIH_TOTAL_IMAGES), name


def test_prevalence_override_keeps_group_ratios() -> None:
    lab, _ = phantom_labels(PhantomConfig(n=60_000, seed=2, prevalence={"Cardiomegaly": 0.2, "Hernia": 0.1}))
    cm = lab["findings"][:, CM]
    assert abs(cm.mean() - 0.2) < 0.015
    assert _binomial_ok(int(lab["findings"][:, finding_index("Hernia")].sum()), 60_000, 0.1)
    # Unchanged findings keep NIH's rate.
    assert _binomial_ok(
        int(lab["findings"][:, finding_index("Effusion")].sum()), 60_000, NIH_PREVALENCE["Effusion"]
    )
    g, v = lab["gender"], lab["view"]
    fap = cm[(g == 1) & (v == 1)].mean()
    mpa = cm[(g == 0) & (v == 0)].mean()
    nih_ratio = (569 / 18_613) / (663 / 37_143)
    assert abs(fap / mpa - nih_ratio) < 0.35 * nih_ratio


def test_prevalence_override_errors_name_the_label() -> None:
    with pytest.raises((ValidationError, LabelError), match="Cardiomegally"):
        PhantomConfig(prevalence={"Cardiomegally": 0.2})
    with pytest.raises(ValidationError, match="Effusion"):
        PhantomConfig(prevalence={"Effusion": 1.5})


def test_defaults_stay_nih() -> None:
    cfg = PhantomConfig()
    assert cfg.prevalence == {}
    assert cfg.finding_rate("Hernia") == pytest.approx(227 / 112_120)
    assert cfg.cardiomegaly_rate("F", "AP") == pytest.approx(569 / 18_613)


# --- cardiothoracic ratio ------------------------------------------------------------------------
def test_ctr_above_threshold_iff_true_cardiomegaly(big_labels: dict[str, np.ndarray]) -> None:
    ctr, cm = big_labels["gt_ctr"], big_labels["gt_cardiomegaly"] == 1
    np.testing.assert_array_equal(ctr > CTR_THRESHOLD, cm)
    v = big_labels["view"]
    pa_normal, ap_normal = ctr[~cm & (v == 0)], ctr[~cm & (v == 1)]
    # PA normals ≈ 0.42–0.45; AP magnifies the heart so AP normals crowd towards 0.5.
    assert 0.42 <= np.median(pa_normal) <= 0.46
    assert np.median(ap_normal) > np.median(pa_normal) + 0.02
    # Overlap near the threshold: many AP normals and PA cardiomegalies within 0.03 of 0.5.
    pa_cm = ctr[cm & (v == 0)]
    assert (ap_normal > 0.47).mean() > 0.2
    assert (pa_cm < 0.53).mean() > 0.15
    # ...while cardiomegaly is a clearly wider heart on average (learnable at 64 px).
    assert np.median(ctr[cm]) - np.median(pa_normal) > 0.08


def test_clean_labels_switch() -> None:
    """label_noise=0: every Cardiomegaly label is the truth (what the quality harness measures with)."""
    lab, _ = phantom_labels(PhantomConfig(n=100_000, seed=12, label_noise=0.0))
    np.testing.assert_array_equal(lab["gt_ctr"] > CTR_THRESHOLD, lab["findings"][:, CM] == 1)
    assert lab["label_flipped"].sum() == 0
    np.testing.assert_array_equal(lab["gt_cardiomegaly"], lab["findings"][:, CM])
    # Switching the noise off keeps every label and every image but the mislabelled hearts.
    noisy = make_phantom(PhantomConfig(n=300, size=32, seed=12))
    clean = make_phantom(PhantomConfig(n=300, size=32, seed=12, label_noise=0.0))
    np.testing.assert_array_equal(noisy.labels["findings"], clean.labels["findings"])
    changed = (noisy.images != clean.images).reshape(300, -1).any(axis=1)
    np.testing.assert_array_equal(changed, noisy.labels["label_flipped"] == 1)
    assert changed.any()


@pytest.mark.parametrize("ppv, sens", [(0.70, 0.90), (0.5, 0.6)])
def test_label_noise_rates_match_the_setting(ppv: float, sens: float) -> None:
    """On 100k rows the measured PPV and sensitivity of the labels equal the settings within
    sampling error, and the label mix stays NIH's (labels are drawn before the truth)."""
    cfg = PhantomConfig(
        n=100_000, seed=13, label_ppv=ppv, label_sensitivity=sens, prevalence={"Cardiomegaly": 0.1}
    )
    lab, _ = phantom_labels(cfg)
    label = lab["findings"][:, CM] == 1
    truth = lab["gt_cardiomegaly"] == 1
    tp = int((label & truth).sum())
    # PPV = TP / labelled: binomial over the labelled images.
    assert _binomial_ok(tp, int(label.sum()), ppv)
    # Sensitivity = TP / true positives.
    assert _binomial_ok(tp, int(truth.sum()), sens, z=5.0)
    assert _binomial_ok(int(label.sum()), cfg.n, 0.1)
    np.testing.assert_array_equal(lab["label_flipped"] == 1, label != truth)
    # Same seed without noise: the very same labels (the noise only changes the truth behind them).
    clean, _ = phantom_labels(cfg.model_copy(update={"label_noise": 0.0}))
    np.testing.assert_array_equal(clean["findings"], lab["findings"])


def test_half_noise_halves_the_error_rates() -> None:
    cfg = PhantomConfig(n=100_000, seed=14, label_noise=0.5, label_ppv=0.6, prevalence={"Cardiomegaly": 0.1})
    lab, _ = phantom_labels(cfg)
    label = lab["findings"][:, CM] == 1
    truth = lab["gt_cardiomegaly"] == 1
    assert _binomial_ok(int((label & truth).sum()), int(label.sum()), 0.8)  # PPV 1 - 0.5·0.4


def test_mislabelled_hearts_are_borderline(big_labels: dict[str, np.ndarray]) -> None:
    """Reader disagreement: about `borderline_share` of the label errors sit within a few reader
    SDs of CTR 0.5; the correctly labelled hearts rarely do."""
    cfg = PhantomConfig()
    ctr = big_labels["gt_ctr"]
    flipped = big_labels["label_flipped"] == 1
    near = np.abs(ctr - CTR_THRESHOLD) < 3 * cfg.reader_ctr_sd + 0.004
    assert flipped.sum() > 500
    share_near_flipped = near[flipped].mean()
    cm_ok = (big_labels["gt_cardiomegaly"] == 1) & ~flipped
    assert share_near_flipped > cfg.borderline_share * 0.9
    assert share_near_flipped > near[cm_ok].mean() + 0.15


@pytest.fixture(scope="module")
def confounders_100k() -> tuple[PhantomConfig, dict[str, np.ndarray], dict[str, np.ndarray]]:
    cfg = PhantomConfig(n=100_000, seed=15)
    lab, p = phantom_labels(cfg)
    return cfg, lab, p


def test_devices_concentrate_in_ap_films_at_the_stated_rates(
    confounders_100k: tuple[PhantomConfig, dict[str, np.ndarray], dict[str, np.ndarray]],
) -> None:
    cfg, lab, p = confounders_100k
    ap = lab["view"] == 1
    tubes = ~np.isnan(p["ett_tip"]) | ~np.isnan(p["ng_end"]) | ~np.isnan(p["cvc_side"])
    assert _binomial_ok(int(tubes[ap].sum()), int(ap.sum()), cfg.device_rate_ap)
    assert _binomial_ok(int(tubes[~ap].sum()), int((~ap).sum()), cfg.device_rate_pa)
    pacer = ~np.isnan(p["pacer_side"])
    assert _binomial_ok(int(pacer.sum()), cfg.n, cfg.pacemaker_rate)
    leads = ~np.isnan(p["lead0_x"])
    assert _binomial_ok(int(leads[ap].sum()), int(ap.sum()), cfg.ecg_lead_rate_ap) and not leads[~ap].any()
    np.testing.assert_array_equal(lab["gt_devices"] == 1, tubes | pacer)
    off = phantom_labels(cfg.model_copy(update={"device_rate_ap": 0.0, "device_rate_pa": 0.0, "n": 1000}))[1]
    assert np.isnan(off["ett_tip"]).all() and np.isnan(off["cvc_side"]).all()


def test_devices_are_bright_lines_in_the_image() -> None:
    """Same chests with and without devices: the devices add thin bright structures."""
    cfg = PhantomConfig(n=16, size=64, seed=16, ap_fraction=1.0, device_rate_ap=1.0, pacemaker_rate=1.0)
    _, p = phantom_labels(cfg)
    with_ = render_images(p, 64, cfg.seed)
    q = dict(p)
    for key in ("ett_tip", "ng_end", "cvc_side", "pacer_side"):
        q[key] = np.full_like(p[key], np.nan)
    without = render_images(q, 64, cfg.seed)
    diff = with_.astype(np.int16) - without.astype(np.int16)
    assert ((diff > 10).sum(axis=(1, 2)) >= 20).all()  # a few lines' worth of pixels per film
    assert ((diff < -10).sum(axis=(1, 2)) <= 2).all()  # devices only add density


def test_low_inspiration_and_rotation_ranges(
    confounders_100k: tuple[PhantomConfig, dict[str, np.ndarray], dict[str, np.ndarray]],
) -> None:
    cfg, lab, p = confounders_100k
    ap = lab["view"] == 1
    low = lab["gt_low_inspiration"] == 1
    assert _binomial_ok(int(low[ap].sum()), int(ap.sum()), cfg.low_inspiration_rate_ap)
    assert _binomial_ok(int(low[~ap].sum()), int((~ap).sum()), cfg.low_inspiration_rate_pa)
    # Poor inspiration: shorter lungs and broader-looking normal hearts than the same view at full.
    normal_pa = ~ap & (lab["gt_cardiomegaly"] == 0)
    assert p["lung_len"][low & ~ap].mean() < 0.9 * p["lung_len"][~low & ~ap].mean()
    assert lab["gt_ctr"][low & normal_pa].mean() > lab["gt_ctr"][~low & normal_pa].mean() + 0.01
    # Rotation about the long axis: SD as set (degrees), bounded.
    rot = np.degrees(lab["gt_axial_rotation"])
    assert abs(rot.std() - cfg.rotation_deg) < 0.05 * cfg.rotation_deg
    assert np.abs(rot).max() <= np.degrees(0.3) + 1e-3


def test_texture_adds_local_structure_and_exposure_spread() -> None:
    """Same chests with texture on and off (texture=0 is the flat first phantom): texture adds
    local structure inside the body, not just a global shift, and spreads exposure between films."""
    base = dict(n=200, size=64, seed=18, device_rate_ap=0.0, device_rate_pa=0.0, ecg_lead_rate_ap=0.0)
    flat_cfg = PhantomConfig(texture=0.0, **base)
    _, p = phantom_labels(PhantomConfig(texture=1.0, **base))
    flat = make_phantom(flat_cfg).images.astype(np.float32)
    tex = make_phantom(PhantomConfig(texture=1.0, **base)).images.astype(np.float32)
    # Local structure: with the film's global exposure undone, the difference still varies inside the lungs.
    q = dict(p)
    for key, neutral in (("gamma", 1.0), ("window", 1.0), ("level", 0.0), ("heel_x", 0.0), ("heel_y", 0.0)):
        q[key] = np.full_like(p[key], neutral)
    q["collim"] = np.full_like(p["collim"], np.nan)
    q["marker_x"] = np.full_like(p["marker_x"], np.nan)
    only_texture = render_images(q, 64, 18).astype(np.float32)
    q["tex_amp"] = np.zeros_like(p["tex_amp"])
    none = render_images(q, 64, 18).astype(np.float32)
    d = (only_texture - none)[:, 18:42, 10:26]  # a lung field
    local = (d - d.mean(axis=(1, 2), keepdims=True)).std(axis=(1, 2))
    assert np.median(local) > 2.0, np.median(local)
    # Exposure: brightness varies more between films than on the flat phantom.
    assert tex.mean(axis=(1, 2)).std() > 1.3 * flat.mean(axis=(1, 2)).std()
    # Collimation and side markers appear at their rates.
    assert _binomial_ok(int((~np.isnan(p["collim"])).sum()), 200, film.COLLIMATION_RATE)
    assert _binomial_ok(int((~np.isnan(p["marker_x"])).sum()), 200, LOOKS["calibrated"].marker_rate)


def _clipped_normal(lo: float, hi: float, loc: float, scale: float) -> tuple[float, float]:
    """Mean and SD of N(loc, scale) clipped (not truncated) to [lo, hi], in closed form."""
    a, b = (lo - loc) / scale, (hi - loc) / scale
    n = stats.norm
    m1 = n.pdf(a) - n.pdf(b) + a * n.cdf(a) + b * n.sf(b)
    m2 = n.cdf(b) - n.cdf(a) + a * n.pdf(a) - b * n.pdf(b) + a * a * n.cdf(a) + b * b * n.sf(b)
    return loc + scale * m1, scale * float(np.sqrt(m2 - m1 * m1))


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_framing_varies_as_set(look: str) -> None:
    """The patient's shift and zoom on the film follow the clipped normals of the look (texture=1;
    texture=0 keeps the first phantom's framing in every look). Checked against the clipped
    normal's closed-form moments, 20k rows."""
    lk = LOOKS[look]
    for texture in (1.0, 0.0):
        _, p = phantom_labels(PhantomConfig(n=20_000, size=64, seed=23, texture=texture, look=look))
        pa = p["ap"] == 0
        sd = lk.shift_sd if texture else FLAT_SHIFT_SD
        _, ref_sd = _clipped_normal(-2.0 * sd, 2.0 * sd, 0.0, sd)
        for key in ("shift_x", "shift_y"):
            if key == "shift_y" and lk.film and texture:
                continue  # plus the film look's own vertical shift (test_phantom_film.py)
            x = p[key][pa]
            assert np.abs(x).max() <= 2.0 * sd + 1e-6
            assert abs(x.std() - ref_sd) < 0.03 * ref_sd, (key, x.std(), ref_sd)
        zm, zsd = 1.0 + lk.zoom_extra * texture, lk.zoom_sd if texture else FLAT_ZOOM_SD
        z_mean, z_sd = _clipped_normal(*lk.zoom_clip, zm, zsd)
        z = p["zoom"][pa]
        assert abs(z.mean() - z_mean) < 5.0 * z_sd / np.sqrt(z.size), (z.mean(), z_mean)
        assert abs(z.std() - z_sd) < 0.03 * z_sd, (z.std(), z_sd)


def test_nih_matched_look_changes_the_film_only() -> None:
    """The opt-in look changes framing and film (markers at its rate, a darker film) and
    nothing in the labels or the ground truth but the framing columns."""
    cfg = dict(n=3000, size=64, seed=31)
    lab_c, _ = phantom_labels(PhantomConfig(look="calibrated", **cfg))
    lab_m, p_m = phantom_labels(PhantomConfig(look="nih_matched", **cfg))
    for key in ("findings", "gender", "view", "patient_id", "gt_ctr", "gt_cardiomegaly", "label_flipped"):
        np.testing.assert_array_equal(lab_c[key], lab_m[key])
    assert not np.array_equal(lab_c["gt_thorax_width"], lab_m["gt_thorax_width"])  # zoom differs
    lk = LOOKS["nih_matched"]
    assert _binomial_ok(int((~np.isnan(p_m["marker_x"])).sum()), 3000, lk.marker_rate)
    assert float(p_m["blur"][0]) == pytest.approx(lk.blur)
    small = dict(n=200, size=64, seed=31)
    dark = make_phantom(PhantomConfig(look="nih_matched", **small)).images.mean()
    assert dark < make_phantom(PhantomConfig(look="calibrated", **small)).images.mean() - 5.0


def test_radiograph_look_changes_the_film_only() -> None:
    """The radiograph look keeps every label, finding, patient, truth and flip of the calibrated look
    for the same seed (only the framing columns differ), draws its lettered markers and arms at
    their rates, and renders a film with more fine structure than the calibrated look's (less blur,
    crisp ribs): a larger share of the chest's variance above 0.25 cycles/pixel."""
    cfg = dict(n=3000, size=64, seed=31)
    lab_c, p_c = phantom_labels(PhantomConfig(look="calibrated", **cfg))
    lab_r, p_r = phantom_labels(PhantomConfig(look="radiograph", **cfg))
    for key in lab_c:
        if key in ("gt_thorax_width", "gt_heart_width", "gt_shift_x", "gt_shift_y"):
            continue  # the look's framing (zoom and shift spread)
        np.testing.assert_array_equal(lab_c[key], lab_r[key], err_msg=key)
    for key in p_c:
        film = ("zoom", "shift_x", "shift_y", "tex_amp", "blur", "window", "level", "sharpen", "look")
        film += ("arm_gap", "y_apex", "lung_len", "tw", "dome_h", "contrast", "fog")  # the look draws
        if key not in film:
            np.testing.assert_array_equal(p_c[key], p_r[key], err_msg=key)
    lk = LOOKS["radiograph"]
    assert _binomial_ok(int((~np.isnan(p_r["marker_x"])).sum()), 3000, lk.marker_rate)
    assert _binomial_ok(int((~np.isnan(p_r["arm_gap"])).sum()), 3000, lk.arms_rate)
    assert np.isnan(p_c["arm_gap"]).all()  # no arms in the older looks
    small = dict(n=64, size=64, seed=31)
    imgs = {look: make_phantom(PhantomConfig(look=look, **small)).images.astype(np.float64) for look in LOOKS}

    def fine_share(x: np.ndarray) -> float:
        """Share of the chest's spatial variance above 0.25 cycles/pixel (contrast-free)."""
        chest = x[:, 12:44, 12:52]
        f = np.abs(np.fft.fft2(chest - chest.mean(axis=(1, 2), keepdims=True))) ** 2
        fy, fx = np.fft.fftfreq(chest.shape[1])[:, None], np.fft.fftfreq(chest.shape[2])[None, :]
        return float(f[:, np.hypot(fy, fx) > 0.25].sum() / f.sum())

    assert fine_share(imgs["radiograph"]) > 1.3 * fine_share(imgs["calibrated"])
    assert not np.array_equal(imgs["radiograph"], imgs["calibrated"])


# Per-image mean grey of the calibrated look (n=24, 64 px, seed 0), the default from its freeze
# (commit 5ca1b2e, 2026-12-01 19:58 UTC) to the fourth wave's, kept byte for byte as
# look="calibrated". Speed work must leave these images as they are; a tolerance of 0.02 grey
# absorbs last-bit differences of float32 exp/log between CPUs (a flipped pixel moves its image's
# mean by 1/4096) but not any change to the image model.
FROZEN_MEANS = [
    185.144,
    137.572,
    115.873,
    89.473,
    106.76,
    107.434,
    139.776,
    138.976,
    162.408,
    105.786,
    155.528,
    113.011,
    118.207,
    91.239,
    157.8,
    193.863,
    187.232,
    154.845,
    198.419,
    145.046,
    171.366,
    159.041,
    113.047,
    129.538,
]


def test_calibrated_look_images_unchanged() -> None:
    cfg = PhantomConfig(n=24, size=64, seed=0, look="calibrated")
    means = make_phantom(cfg).images.astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(means, FROZEN_MEANS, atol=0.02)


# Per-image mean grey of the radiograph look (n=24, 64 px, seed 0), the default from the fourth
# wave's freeze (commit "phantom: freeze defaults (fourth wave)", image freeze 2026-12-02 02:45
# UTC) to the fifth wave's, kept byte for byte as look="radiograph" (same tolerance as above).
FROZEN_RADIOGRAPH_MEANS = [
    176.747,
    128.974,
    104.959,
    83.037,
    97.197,
    97.546,
    137.021,
    132.878,
    153.324,
    104.542,
    147.887,
    97.132,
    106.115,
    74.153,
    147.614,
    180.533,
    177.384,
    148.271,
    185.579,
    128.499,
    167.483,
    133.934,
    101.16,
    119.692,
]


def test_radiograph_look_images_unchanged() -> None:
    cfg = PhantomConfig(n=24, size=64, seed=0, look="radiograph")
    means = make_phantom(cfg).images.astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(means, FROZEN_RADIOGRAPH_MEANS, atol=0.02)


# Per-image mean grey of the default phantom, the film look (n=24, 64 px, seed 0), at the fifth
# wave's freeze (commit "phantom: freeze defaults (fifth wave): look=film", 2026-12-02; candidate
# 6): the difficulty is calibrated on these images, so later work must leave them as they are.
FROZEN_FILM_MEANS = [
    159.899,
    126.649,
    106.432,
    91.57,
    102.319,
    101.395,
    114.059,
    138.913,
    157.254,
    78.591,
    129.779,
    89.927,
    107.394,
    72.184,
    122.126,
    155.975,
    163.304,
    127.986,
    176.569,
    133.368,
    169.86,
    131.619,
    98.306,
    122.831,
]


def test_frozen_default_images_unchanged() -> None:
    cfg = PhantomConfig(n=24, size=64, seed=0)
    assert cfg.look == "film"
    means = make_phantom(cfg).images.astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(means, FROZEN_FILM_MEANS, atol=0.02)


def test_interp_matrix_cache_returns_the_same_weights() -> None:
    """The cached interpolation matrices are the ones built from scratch, and read-only."""
    coords = _pixel_coords(64)
    m = film._interp_matrix(coords, 14)
    fresh = film._interp_matrix_cached.__wrapped__(coords.astype(np.float32).tobytes(), 14)
    np.testing.assert_array_equal(m, fresh)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError):
        m[0, 0] = 2.0


def _measure_heart(img: np.ndarray, p: dict[str, np.ndarray], i: int, size: int) -> float:
    """Heart width in pixels, measured the clinical way on the rendered image.

    CTR = (max right extent + max left extent from the midline) / thoracic width; each extent
    is taken over the rows above its own hemidiaphragm, as the bright run around the midline
    bounded by darker lung (threshold half-way between heart and lung grey).
    """
    img = img.astype(np.float64)

    def row(y: float) -> int:
        return int((y + 1.0) / 2.0 * size)

    def col(x: float) -> int:
        return int((x + 1.0) / 2.0 * size)

    y_cp = p["y_apex"][i] + p["lung_len"][i]
    dome_r = y_cp - p["dome_h"][i] - p["dome_right_up"][i]  # image left (patient right)
    dome_l = y_cp - p["dome_h"][i]
    mid = size // 2
    r_mid = row(dome_l - 0.15)
    heart_grey = img[r_mid, mid - 2 : mid + 2].mean()
    lung_grey = np.median(
        np.concatenate(
            [
                img[r_mid, col(-0.62 * p["tw"][i]) : col(-0.5 * p["tw"][i])],
                img[r_mid, col(0.7 * p["tw"][i]) : col(0.8 * p["tw"][i])],
            ]
        )
    )
    thr = (heart_grey + lung_grey) / 2.0
    centre = (size - 1) / 2.0
    mrd = mld = 0.0
    # The renderer keeps both widest points of the heart ANATOMY.heart_clear above the left dome;
    # rows nearer the diaphragm blur heart, dome and breast shadows together.
    last = row(dome_l - ANATOMY.heart_clear / 2)
    for r in range(row(p["y_apex"][i] + 0.2), last):
        bright = img[r] > thr
        if not bright[mid]:
            continue
        left = mid
        while left > 0 and bright[left - 1]:
            left -= 1
        right = mid
        while right < size - 1 and bright[right + 1]:
            right += 1
        if r < row(dome_r - ANATOMY.heart_clear / 2):
            mrd = max(mrd, centre - left + 0.5)
        mld = max(mld, right - centre + 0.5)
    return mrd + mld


@pytest.mark.parametrize("look", sorted(LOOKS))
@pytest.mark.parametrize("size", [128, 256])
def test_rendered_heart_width_matches_ground_truth(size: int, look: str) -> None:
    """The gt_heart_width column against the heart measured in the pixels (clinical extents,
    independent of the renderer's formulas), and the CTR that measurement gives against gt_ctr.
    In every look: the radiograph look draws the heart by its borders instead of an ellipse."""
    cfg = PhantomConfig(
        n=16, size=size, seed=4, prevalence={**ONLY_CM, "Cardiomegaly": 0.5}, look=look, **GEOMETRY_ONLY
    )
    lab, p = phantom_labels(cfg)
    # Upright, centred, noiseless films so the midline is the image centre; the gt widths were
    # computed for the drawn zoom, so they are rescaled to zoom 1.
    zoom = p["zoom"].copy()
    for key in ("rot", "shift_x", "shift_y", "grain"):
        p[key][:] = 0.0
    p["zoom"][:] = 1.0
    imgs = render_images(p, size, cfg.seed)
    tol = 2.5 * size / 256 + 0.5
    measured = []
    for i in range(cfg.n):
        width = _measure_heart(imgs[i], p, i, size)
        expected = float(lab["gt_heart_width"][i] / zoom[i])
        assert abs(width - expected) <= tol, (i, width, expected)
        measured.append(width / float(lab["gt_thorax_width"][i] / zoom[i]))
    measured_ctr = np.array(measured)
    np.testing.assert_allclose(measured_ctr, lab["gt_ctr"], atol=tol / (0.6 * size))
    clear = np.abs(lab["gt_ctr"] - 0.5) > 0.02
    cm = lab["gt_cardiomegaly"] == 1
    np.testing.assert_array_equal((measured_ctr > 0.5)[clear], cm[clear])
    assert cm.any() and (~cm).any()


# --- general labels change the image ---------------------------------------------------------------
def _features(images: np.ndarray, k: int = 8) -> np.ndarray:
    n, h, w = images.shape
    x = images.astype(np.float32).reshape(n, k, h // k, k, w // k).mean(axis=(2, 4)).reshape(n, -1)
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def test_gender_and_view_are_learnable_from_pixels() -> None:
    ds = make_phantom(PhantomConfig(n=1600, size=32, seed=21))
    x = _features(ds.images)
    tr, te = slice(0, 1100), slice(1100, None)
    for col in ("gender", "view"):
        y = ds.labels[col]
        clf = LogisticRegression(max_iter=400, C=0.5).fit(x[tr], y[tr])
        auc = roc_auc_score(y[te], clf.decision_function(x[te]))
        assert auc > 0.85, (col, auc)


def test_gender_and_view_change_measurable_statistics() -> None:
    ds = make_phantom(PhantomConfig(n=800, size=64, seed=22, prevalence=ONLY_CM | {"Cardiomegaly": 0.0}))
    img = ds.images.astype(np.float32)
    g, v = ds.labels["gender"], ds.labels["view"]
    # Thorax: women narrower.
    tw = ds.labels["gt_thorax_width"]
    assert stats.ttest_ind(tw[g == 0], tw[g == 1], equal_var=False).statistic > 10
    # Breast shadows: lower lateral lung fields brighter in women (same view: PA).
    low_lat = np.concatenate([img[:, 36:44, 8:20], img[:, 36:44, 44:56]], axis=2).mean(axis=(1, 2))
    sel_m, sel_f = (g == 0) & (v == 0), (g == 1) & (v == 0)
    t = stats.ttest_ind(low_lat[sel_f], low_lat[sel_m], equal_var=False)
    assert t.statistic > 3 and t.pvalue < 1e-3
    # AP: lower contrast (spread of grey values inside the chest).
    chest = img[:, 8:48, 8:56].reshape(len(img), -1)
    spread = chest.std(axis=1)
    t = stats.ttest_ind(spread[v == 0], spread[v == 1], equal_var=False)
    assert t.statistic > 5
    # AP: the heart is magnified on the film (normals only here).
    ctr = ds.labels["gt_ctr"]
    assert ctr[v == 1].mean() > ctr[v == 0].mean() * 1.05


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_cardiomegaly_is_learnable_from_pixels_at_32px(look: str) -> None:
    """The CTR cue survives every look (the radiograph look draws the heart by its borders)."""
    cfg = PhantomConfig(n=1600, size=32, seed=23, prevalence={**ONLY_CM, "Cardiomegaly": 0.5}, look=look)
    ds = make_phantom(cfg)
    x = _features(ds.images, k=16)
    y = ds.labels["findings"][:, CM]
    clf = LogisticRegression(max_iter=600, C=0.2).fit(x[:1100], y[:1100])
    auc = roc_auc_score(y[1100:], clf.decision_function(x[1100:]))
    assert auc > 0.75, auc


# --- findings render ---------------------------------------------------------------------------------
def _with_and_without(
    name: str, n: int = 24, size: int = 64, look: str = "calibrated"
) -> tuple[ImageDataset, ImageDataset]:
    cfg = PhantomConfig(
        n=n, size=size, seed=31, prevalence={**ONLY_CM, "Cardiomegaly": 0.0, name: 1.0}, look=look
    )
    with_ = make_phantom(cfg)
    none = np.zeros_like(with_.labels["findings"])
    without = make_phantom(cfg, findings=none)
    return with_, without


def test_counterfactual_changes_only_the_finding() -> None:
    w, wo = _with_and_without("Nodule", n=8)
    for k in ("gender", "view", "patient_id", "gt_thorax_width", "gt_ctr"):
        np.testing.assert_array_equal(w.labels[k], wo.labels[k])
    assert wo.labels["findings"].sum() == 0 and (w.labels["findings"][:, finding_index("Nodule")] == 1).all()


@pytest.mark.parametrize("look", sorted(LOOKS))
@pytest.mark.parametrize("name", [f for f in FINDINGS if f != "Cardiomegaly"])
def test_every_finding_changes_the_image(name: str, look: str) -> None:
    w, wo = _with_and_without(name, n=12, look=look)
    diff = np.abs(w.images.astype(np.int16) - wo.images.astype(np.int16))
    changed = (diff > 6).reshape(len(diff), -1).sum(axis=1)
    assert (changed >= 3).all(), (name, changed)


def test_effusion_blunts_the_costophrenic_angle() -> None:
    """Same chest with and without effusion: the added density sits low and lateral, on its side."""
    size, n = 64, 24
    w, wo = _with_and_without("Effusion", n=n, size=size)
    side = w.labels["gt_effusion_side"]  # -1 image left, +1 image right, 0 both
    _, p = phantom_labels(PhantomConfig(n=n, size=size, seed=31, prevalence={**ONLY_CM, "Effusion": 1.0}))
    centre = (size - 1) / 2
    for i in range(n):
        diff = w.images[i].astype(float) - wo.images[i].astype(float)
        rows, cols = np.nonzero(diff > 8)
        assert rows.size >= 6, (i, rows.size)
        # Low: below the middle of the lung field (frame y -> pixel row).
        mid_lung = (p["y_apex"][i] + 0.6 * p["lung_len"][i] + 1) / 2 * size
        assert rows.mean() > mid_lung, (i, rows.mean(), mid_lung)
        half_thorax = p["tw"][i] * size / 2
        off = cols - centre
        if side[i] == 0:  # bilateral: both sides get fluid
            assert (off < -0.3 * half_thorax).sum() >= 3 and (off > 0.3 * half_thorax).sum() >= 3
        else:  # lateral, on the effusion's side
            assert np.sign(off.mean()) == side[i], (i, off.mean(), side[i])
            assert np.abs(off).mean() > 0.35 * half_thorax


def test_nodule_and_mass_are_bright_round_opacities() -> None:
    size = 128
    for name, key in (("Nodule", "nodule"), ("Mass", "mass")):
        w, wo = _with_and_without(name, n=10, size=size)
        for i in range(10):
            lab = w.labels
            # gt position is in patient frame; the film adds rotation/shift/zoom. The brightest
            # change must be within the lesion radius (+ placement) of the nominal position.
            diff = w.images[i].astype(float) - wo.images[i].astype(float)
            assert diff.max() > 25, (name, i)
            r_px = lab[f"gt_{key}_r"][i] * size / 2
            assert (diff > 12).sum() >= min(3.0, np.pi * r_px**2 * 0.5)


def test_pneumothorax_removes_lung_markings_and_darkens_the_rim() -> None:
    w, wo = _with_and_without("Pneumothorax", n=16, size=64)
    diff = w.images.astype(float) - wo.images.astype(float)
    # More pixels darker than brighter (lucent rim without markings) - the pleural line is thin.
    assert ((diff < -4).sum(axis=(1, 2)) > (diff > 4).sum(axis=(1, 2))).mean() > 0.8


# --- patients ------------------------------------------------------------------------------------------
def test_follow_ups_share_sex_and_anatomy(big_labels: dict[str, np.ndarray]) -> None:
    lab, p = phantom_labels(PhantomConfig(n=5000, seed=8))
    pid = lab["patient_id"]
    order = np.argsort(pid, kind="stable")
    for col in (lab["gender"], p["tw"], p["y_apex"], p["breast"], p["body_extra"]):
        sorted_col = col[order]
        same_patient = pid[order][1:] == pid[order][:-1]
        np.testing.assert_array_equal(sorted_col[1:][same_patient], sorted_col[:-1][same_patient])
    # Follow-up numbers count 0, 1, 2, ... per patient; image names follow NIH's pattern.
    assert (
        lab["follow_up"][lab["follow_up"] > 0] - 1
        == lab["follow_up"][np.flatnonzero(lab["follow_up"] > 0) - 1]
    ).all()
    assert lab["image_index"][0] == f"{pid[0]:08d}_{lab['follow_up'][0]:03d}.png"
    assert len(np.unique(lab["image_index"])) == len(pid)
    # Several images per patient on average, like NIH (3.64).
    big_pid = big_labels["patient_id"]
    per = len(big_pid) / len(np.unique(big_pid))
    assert abs(per - NIH_IMAGES_PER_PATIENT) < 0.15
    assert (np.bincount(big_pid) > 1).sum() > 0.3 * len(np.unique(big_pid))


def test_follow_ups_look_like_the_same_person() -> None:
    # Anatomy only: exposure, devices and texture differ between any two films, a patient's too.
    ds = make_phantom(PhantomConfig(n=400, size=32, seed=9, images_per_patient=4.0, **GEOMETRY_ONLY))
    img = ds.images.astype(np.float32).reshape(len(ds), -1)
    pid = ds.labels["patient_id"]
    view = ds.labels["view"]
    same, other = [], []
    rng = np.random.default_rng(0)
    for i in range(len(ds) - 1):
        if pid[i + 1] == pid[i] and view[i + 1] == view[i]:
            same.append(np.abs(img[i] - img[i + 1]).mean())
            j = int(rng.integers(len(ds)))
            if pid[j] != pid[i] and view[j] == view[i]:
                other.append(np.abs(img[i] - img[j]).mean())
    assert np.mean(same) < np.mean(other)


# --- NIH on-disk format --------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["flat", "nih"])
def test_write_nih_format_round_trip(tmp_path, small: ImageDataset, layout: str) -> None:
    ds = small.subset(np.arange(25))
    csv_path = write_nih_format(ds, tmp_path, layout=layout, per_folder=10)
    assert csv_path.name == NIH_CSV_NAME
    with csv_path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    assert tuple(header) == NIH_CSV_COLUMNS
    assert header[:7] == [
        "Image Index",
        "Finding Labels",
        "Follow-up #",
        "Patient ID",
        "Patient Age",
        "Patient Gender",
        "View Position",
    ]
    assert len(rows) == 25
    files = sorted(tmp_path.rglob("*.png"))
    assert len(files) == 25
    if layout == "nih":
        assert (tmp_path / "images_001" / "images").is_dir() and (tmp_path / "images_003" / "images").is_dir()
    else:
        assert all(f.parent == tmp_path / "images" for f in files)
    by_name = {f.name: f for f in files}
    for i, row in enumerate(rows):
        rec = dict(zip(header, row))
        assert rec["Image Index"] == ds.labels["image_index"][i]
        assert rec["Finding Labels"] == decode_findings(ds.labels["findings"][i])
        assert int(rec["Follow-up #"]) == ds.labels["follow_up"][i]
        assert int(rec["Patient ID"]) == ds.labels["patient_id"][i]
        assert int(rec["Patient Age"]) == ds.labels["age"][i]
        assert rec["Patient Gender"] == "MF"[ds.labels["gender"][i]]
        assert rec["View Position"] == ("PA", "AP")[ds.labels["view"][i]]
        assert int(rec["OriginalImage[Width"]) == 32 and int(rec["Height]"]) == 32
        assert float(rec["OriginalImagePixelSpacing[x"]) > 0
        with Image.open(by_name[rec["Image Index"]]) as im:
            np.testing.assert_array_equal(np.asarray(im), ds.images[i])


def test_write_nih_format_upscales_and_rejects_bad_layout(tmp_path, small: ImageDataset) -> None:
    ds = small.subset(np.arange(3))
    csv_path = write_nih_format(ds, tmp_path / "big", write_size=128)
    with Image.open(next((tmp_path / "big" / "images").glob("*.png"))) as im:
        assert im.size == (128, 128)
    with csv_path.open() as fh:
        assert ",128,128," in fh.read()
    with pytest.raises(PhantomError, match="layout"):
        write_nih_format(ds, tmp_path / "x", layout="zip")
    with pytest.raises(PhantomError, match="write_size"):
        write_nih_format(ds, tmp_path / "y", write_size=5)
