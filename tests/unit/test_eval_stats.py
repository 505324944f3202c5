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
