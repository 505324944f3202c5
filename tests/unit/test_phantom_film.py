"""The ``film`` look (fifth wave): same labels and ground truth as the radiograph look, graded
densities, shoulders on films with the arms in the field, softer films, and per-view exposure
fitted to the NIH sample's grey statistics. The pixel-measured CTR, every finding's
counterfactual, the framing and the Cardiomegaly probe run in every look in test_phantom.py."""

from __future__ import annotations

import numpy as np
import pytest
from gdgan.data.phantom import PhantomConfig, make_phantom, phantom_labels, render_images
from gdgan.data.phantom import film_look as fl
from gdgan.data.phantom.config import LOOKS
from scipy import stats

FILM_KEYS = ("humeral_dy", "zoom", "shift_y", "level", "window", "tex_amp", "blur", "look", "arm_gap")


def test_film_look_keeps_labels_and_ground_truth() -> None:
    """Every label, finding, patient, CTR, truth and flip is the radiograph look's for the same
    seed; only the framing columns (zoom, vertical shift) and the film's own draws differ."""
    cfg = dict(n=3000, size=64, seed=31)
    lab_r, p_r = phantom_labels(PhantomConfig(look="radiograph", **cfg))
    lab_f, p_f = phantom_labels(PhantomConfig(look="film", **cfg))
    for key in lab_r:
        if key in ("gt_thorax_width", "gt_heart_width", "gt_shift_y"):
            continue
        np.testing.assert_array_equal(lab_r[key], lab_f[key], err_msg=key)
    for key in p_r:
        if key not in FILM_KEYS:
            np.testing.assert_array_equal(p_r[key], p_f[key], err_msg=key)
    np.testing.assert_allclose(lab_f["gt_heart_width"] / lab_f["gt_thorax_width"], lab_r["gt_ctr"], rtol=1e-5)


def test_film_exposure_and_framing_draws_follow_their_settings() -> None:
    """The per-view level and window are exactly the settings; the extra vertical shift (film
    minus radiograph, same base draws) follows its clipped normal (closed-form moments)."""
    cfg = dict(n=20_000, size=64, seed=5)
    _, p_r = phantom_labels(PhantomConfig(look="radiograph", **cfg))
    _, p_f = phantom_labels(PhantomConfig(look="film", **cfg))
    ap = p_f["ap"] == 1
    F = fl.FILM
    # same base draws: window_shift differs between the looks by a constant factor
    w_base = (1.0 + LOOKS["film"].window_shift) / (1.0 + LOOKS["radiograph"].window_shift)
    ratio = p_f["window"] / (p_r["window"] * w_base)
    np.testing.assert_allclose(ratio[ap], F.window_ap, rtol=1e-5)
    np.testing.assert_allclose(ratio[~ap], F.window_pa, rtol=1e-5)
    dl = p_f["level"] - p_r["level"] - (LOOKS["film"].level_shift - LOOKS["radiograph"].level_shift)
    np.testing.assert_allclose(dl[ap], F.level_ap, atol=1e-6)
    np.testing.assert_allclose(dl[~ap], F.level_pa, atol=1e-6)
    dy = (p_f["shift_y"] - p_r["shift_y"]).astype(np.float64) - F.shift_y_mean
    sd = F.shift_y_sd
    assert np.abs(dy).max() <= 2.0 * sd + 1e-5
    a, b = -2.0, 2.0  # clipped (not truncated) standard normal: mean 0, variance below
    n = stats.norm
    var = n.cdf(b) - n.cdf(a) + a * n.pdf(a) - b * n.pdf(b) + a * a * n.cdf(a) + b * b * n.sf(b)
    assert abs(dy.mean()) < 5.0 * sd / np.sqrt(dy.size)
    assert abs(dy.std() - sd * np.sqrt(var)) < 0.03 * sd
    # texture 0 is the first phantom's framing and exposure in every look
    _, p0 = phantom_labels(PhantomConfig(look="film", texture=0.0, n=500, seed=5))
    _, r0 = phantom_labels(PhantomConfig(look="radiograph", texture=0.0, n=500, seed=5))
    for key in ("shift_y", "level", "window", "zoom"):
        np.testing.assert_allclose(p0[key], r0[key], atol=1e-6, err_msg=key)


def test_film_grey_statistics_match_the_nih_sample_per_view() -> None:
    """A 1,000-image film-look draw has the NIH sample's per-view grey statistics (recorded in
    ``NIH_SAMPLE_GREY``): the mean grey within 10 grey levels (PA films sit ~7 below the sample:
    brighter ones moved the domain-feature distance away), the mean per-image contrast within 6,
    and their spreads between films within 35 % — the radiograph look's AP films miss the first
    two (149 and 41 for the sample's 132 and 54)."""
    ds = make_phantom(PhantomConfig(n=1000, size=64, seed=2, look="film"))
    x = ds.images.astype(np.float64)
    m, s = x.mean(axis=(1, 2)), x.std(axis=(1, 2))
    for view, sel in (("PA", ds.labels["view"] == 0), ("AP", ds.labels["view"] == 1)):
        mean, mean_sd, std, std_sd = fl.NIH_SAMPLE_GREY[view]
        assert abs(m[sel].mean() - mean) < 10.0, (view, m[sel].mean(), mean)
        assert abs(s[sel].mean() - std) < 6.0, (view, s[sel].mean(), std)
        assert abs(m[sel].std() / mean_sd - 1.0) < 0.35, (view, m[sel].std(), mean_sd)
        assert abs(s[sel].std() / std_sd - 1.0) < 0.35, (view, s[sel].std(), std_sd)


def test_film_heart_and_body_profiles_in_closed_form() -> None:
    """The heart's own density is ``heart_centre`` at its centre and ``heart_rim`` at its widest
    points, rising as sqrt(1 − u²) between; the trunk's soft tissue is zero at the skin and
    the radiograph look's profile inside the fade."""
    F = fl.FILM
    hw = np.float32(0.4)
    u = np.linspace(-1.0, 1.0, 41, dtype=np.float32)
    g = fl.heart_profile(np.ones_like(u), u * hw / 2, np.float32(0.0), hw)
    expected = F.heart_rim + (F.heart_centre - F.heart_rim) * np.sqrt(np.clip(1 - u * u, 0, 1))
    np.testing.assert_allclose(g, expected, atol=1e-6)
    rel = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    t = fl.body_tissue(np.ones_like(rel), rel, 0.5, 0.2)
    assert t[-1] == 0.0
    inner = rel <= 1.0 - 1.0 / F.body_fade
    np.testing.assert_allclose(t[inner], (0.5 + 0.2 * (1 - rel * rel))[inner], atol=1e-6)
    a = fl.air_rows(np.array([[-0.75], [0.55]], dtype=np.float32), np.float32(-0.75), np.float32(1.3))
    np.testing.assert_allclose(a.ravel(), [1.0, 1.0 - F.air_base_fade], atol=1e-6)


def test_film_shoulders_only_on_films_with_arms(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shoulder mass and humeral head brighten the film's top corners, and only on the films
    that have their arms in the field (same chests rendered without them)."""
    import dataclasses

    from gdgan.data.phantom import anatomy

    _, p = phantom_labels(PhantomConfig(n=48, size=64, seed=9, look="film", texture=0.0, noise=0.0))
    p["arm_gap"] = np.where(np.arange(48) % 2 == 0, np.float32(0.04), np.float32(np.nan))
    with_shoulders = render_images(p, 64, 9).astype(np.float64)
    monkeypatch.setattr(anatomy, "FILM", dataclasses.replace(fl.FILM, shoulder=0.0, humeral=0.0))
    without = render_images(p, 64, 9).astype(np.float64)
    d = with_shoulders - without
    assert (d >= 0).all()  # shoulders only add density
    corners = np.concatenate([d[:, :24, :10].reshape(48, -1), d[:, :24, -10:].reshape(48, -1)], axis=1)
    on = np.isfinite(p["arm_gap"])
    assert (corners[on].max(axis=1) > 10).all(), corners[on].max(axis=1)
    assert (d[~on] == 0).all()


def test_film_is_softer_than_the_radiograph_look() -> None:
    """NIH's 64-px films are downsampled from 1,024 px: the film look carries a smaller share of
    its variance above 0.3 cycles/pixel than the radiograph look's unblurred films."""

    def fine_share(x: np.ndarray) -> float:
        chest = x[:, 12:44, 12:52]
        f = np.abs(np.fft.fft2(chest - chest.mean(axis=(1, 2), keepdims=True))) ** 2
        fy, fx = np.fft.fftfreq(chest.shape[1])[:, None], np.fft.fftfreq(chest.shape[2])[None, :]
        return float(f[:, np.hypot(fy, fx) > 0.3].sum() / f.sum())

    small = dict(n=64, size=64, seed=31)
    imgs = {k: make_phantom(PhantomConfig(look=k, **small)).images.astype(np.float64) for k in LOOKS}
    assert fine_share(imgs["film"]) < 0.7 * fine_share(imgs["radiograph"])


@pytest.mark.parametrize("look", ["radiograph", "calibrated"])
def test_film_switches_leave_other_looks_alone(look: str) -> None:
    """The film look's draws live in their own stream and its parameters only in its table."""
    _, p = phantom_labels(PhantomConfig(n=50, seed=1, look=look))
    assert "humeral_dy" not in p
