"""ROC AUC and ROC curves, written out so that the statistics code can resample them cheaply.

AUC is the Mann–Whitney U statistic: the probability that a random positive scores above a
random negative, ties counting one half (mid-ranks). That equals the trapezoidal area under
the ROC curve, and scikit-learn's ``roc_auc_score`` (checked in the tests).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


class AUCError(ValueError):
    pass


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise AUCError(f"y_true has {y.size} values, scores has {s.size}")
    if not np.isfinite(s).all():
        raise AUCError("scores contain NaN or infinity")
    if y.all() or not y.any():
        raise AUCError("AUC needs at least one positive and one negative")
    return y, s


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, mid-ranks for ties)."""
    y, s = _check(y_true, scores)
    ranks = rankdata(s)  # average ranks for ties
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, from (0, 0) to (1, 1)."""
    y, s = _check(y_true, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.where(np.diff(s_sorted))[0]
    cut = np.r_[distinct, y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[cut]
    fps = (cut + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    thr = np.r_[np.inf, s_sorted[cut]]
    return fpr, tpr, thr


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, max_points: int = 200) -> dict[str, list[float]]:
    """A JSON-sized ROC curve (interpolated onto a fixed FPR grid, endpoints kept)."""
    grid = np.linspace(0.0, 1.0, max_points)
    # step interpolation: the best TPR reached at or below each FPR
    idx = np.searchsorted(fpr, grid, side="right") - 1
    return {"fpr": [round(float(x), 5) for x in grid], "tpr": [round(float(tpr[i]), 5) for i in idx]}
