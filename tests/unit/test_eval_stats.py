"""Welch's t-test equals SciPy's; bootstrap and paired comparisons behave."""

from __future__ import annotations

import numpy as np
import pytest
from gdgan.evaluation.auc import roc_auc
from gdgan.evaluation.stats import (
    bootstrap_auc_ci,
    bootstrap_mean_auc_ci,
    mean_sd,
    paired_difference,
    t_interval,
    verdict,
    welch_t_test,
)
from scipy import stats


@pytest.mark.parametrize("seed", range(4))
def test_welch_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(2.1, 0.05, 10)
    b = rng.normal(2.3, 0.2, 7 + seed)
    ours = welch_t_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert ours.t == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.df == pytest.approx(ref.df, rel=1e-12)


def test_mean_sd_uses_sample_sd() -> None:
    r = mean_sd([0.80, 0.82, 0.81])
    assert r["mean"] == pytest.approx(0.81)
    assert r["sd"] == pytest.approx(np.std([0.80, 0.82, 0.81], ddof=1))


def test_bootstrap_ci_brackets_auc() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.25
    s = rng.normal(size=400) + y
    ci = bootstrap_auc_ci(y, s, n_boot=300, seed=1)
    assert ci["lo"] < ci["auc"] < ci["hi"]
    assert ci == bootstrap_auc_ci(y, s, n_boot=300, seed=1)  # seeded


def test_paired_difference() -> None:
    rng = np.random.default_rng(0)
    runs_a, runs_b = [], []
    for _ in range(3):
        y = rng.random(300) < 0.3
        base = rng.normal(size=300)
        runs_b.append((y, base + 0.5 * y))
        runs_a.append((y, base + 1.5 * y))  # clearly better on the same images
    d = paired_difference(runs_a, runs_b, n_boot=200, seed=0)
    assert d["mean"] > 0 and d["bootstrap_ci"][0] > 0 and len(d["per_repeat"]) == 3
    same = paired_difference(runs_b, runs_b, n_boot=50)
    assert same["mean"] == 0 and same["bootstrap_ci"] == [0.0, 0.0]


def test_mean_auc_ci_is_not_fooled_by_score_scales() -> None:
    # Three classifiers, each good, but on different score scales: concatenating their logits
    # gives a low AUC; the CI of the mean AUC must bracket the per-repeat mean.
    rng = np.random.default_rng(0)
    runs = []
    for r in range(3):
        y = rng.random(300) < 0.1
        runs.append((y, rng.normal(size=300) + 2.0 * y + 10.0 * r))
    mean = np.mean([roc_auc(y, s) for y, s in runs])
    ci = bootstrap_mean_auc_ci(runs, n_boot=200, seed=0)
    assert ci["auc"] == pytest.approx(mean) and ci["lo"] < mean < ci["hi"]
    pooled = roc_auc(np.concatenate([y for y, _ in runs]), np.concatenate([s for _, s in runs]))
    assert pooled < ci["lo"]  # the naive pooled AUC would be outside the interval


def test_t_interval_hand_computed() -> None:
    v = [0.80, 0.83, 0.78]
    ci = t_interval(v)
    mean = sum(v) / 3
    sd = (sum((x - mean) ** 2 for x in v) / 2) ** 0.5
    half = 4.302652729911275 * sd / 3**0.5  # t_{0.975, 2}
    assert ci["mean"] == pytest.approx(mean, rel=1e-12) and ci["df"] == 2 and ci["n"] == 3
    assert ci["lo"] == pytest.approx(mean - half, rel=1e-9) and ci["hi"] == pytest.approx(
        mean + half, rel=1e-9
    )
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(v), scale=stats.sem(v))
    assert (ci["lo"], ci["hi"]) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    one = t_interval([0.8])
    assert one["lo"] is None and one["hi"] is None and one["mean"] == 0.8
    lo90, hi90 = stats.t.interval(0.90, 4, loc=2.0, scale=stats.sem([1, 2, 3, 2, 2]))
    ci90 = t_interval([1, 2, 3, 2, 2], level=0.90)
    assert (ci90["lo"], ci90["hi"]) == (pytest.approx(lo90, rel=1e-12), pytest.approx(hi90, rel=1e-12))


def _planted(strengths: tuple[float, ...], n: int = 2000) -> tuple[list, list]:
    """Paired runs where strategy a's signal is ``k`` (b's is 1) on each repeat's test images."""
    rng = np.random.default_rng(0)
    runs_a, runs_b = [], []
    for k in strengths:
        y = rng.random(n) < 0.3
        base = rng.normal(size=n)
        runs_b.append((y, base + 1.0 * y))
        runs_a.append((y, base + k * y))
    return runs_a, runs_b


def test_paired_t_ci_hand_computed_and_verdict_uses_it() -> None:
    """The README's old claim in miniature: large test sets make the bootstrap exclude 0, while
    the repeats disagree in sign so the repeat-level interval includes it. The verdict follows
    the repeat-level interval."""
    runs_a, runs_b = _planted((1.6, 0.85, 1.4))
    d = paired_difference(runs_a, runs_b, n_boot=300, seed=0)
    diffs = [roc_auc(ya, sa) - roc_auc(yb, sb) for (ya, sa), (yb, sb) in zip(runs_a, runs_b)]
    assert d["per_repeat"] == pytest.approx(diffs, rel=1e-12)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert d["t_ci"] == [pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12)]
    assert d["bootstrap_ci"][0] > 0  # test-set sampling alone: "excludes 0"
    assert d["t_ci"][0] < 0 < d["t_ci"][1]  # retraining: includes 0
    assert d["verdict"] == "no difference shown (repeat-level 95% CI includes 0)"
    better = paired_difference(*_planted((1.6, 1.5, 1.7)), n_boot=50)
    assert better["t_ci"][0] > 0 and better["verdict"].startswith("higher")
    assert verdict([-0.2, -0.1]).startswith("lower") and verdict(None).startswith("no verdict")
    single = paired_difference(runs_a[:1], runs_b[:1], n_boot=20)
    assert single["t_ci"] is None and single["verdict"].startswith("no verdict")
