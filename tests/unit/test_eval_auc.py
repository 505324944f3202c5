"""AUC and ROC against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from gdgan.evaluation.auc import AUCError, roc_auc, roc_curve, thin_curve
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.2
    s = np.round(rng.normal(size=300) + y * 0.8, 1)  # rounding creates ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_roc_curve_matches_sklearn_area() -> None:
    rng = np.random.default_rng(7)
    y = rng.random(500) < 0.3
    s = rng.normal(size=500) + y
    fpr, tpr, _ = roc_curve(y, s)
    f2, t2, _ = sk_roc_curve(y, s, drop_intermediate=False)
    assert np.trapezoid(tpr, fpr) == pytest.approx(np.trapezoid(t2, f2), abs=1e-12)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s), abs=1e-12)
    th = thin_curve(fpr, tpr, 50)
    assert len(th["fpr"]) == 50 and th["tpr"][-1] == 1.0


def test_perfect_and_inverse() -> None:
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_errors() -> None:
    with pytest.raises(AUCError, match="one positive and one negative"):
        roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(AUCError, match="scores has"):
        roc_auc([0, 1], [0.1])
