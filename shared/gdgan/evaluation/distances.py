"""Distances between a synthetic and a real image set in a feature space.

- Fréchet distance and KID: the math of :mod:`gdgan.evaluation.fid` (torch-fidelity's), reused.
- Relative FD = FD(synthetic, real test) / FD(real-train subset of the same n, real test): the
  denominator is what two honest samples of the same population score at this n and in these
  features, so 1 reads "as close as real data" on any dataset and feature network.
- Precision and recall (Kynkäänniemi et al. 2019, "Improved precision and recall metric for
  assessing generative models"): each set's manifold is the union of balls around its points,
  of radius the distance to the k-th nearest neighbour within the set. Precision = share of
  synthetic points inside the real manifold (fidelity); recall = share of real points inside
  the synthetic manifold (coverage).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gdgan.evaluation.fid import fid_from_features, kid_from_features

DEFAULT_K = 3
_CHUNK = 1024


class DistanceError(ValueError):
    """Feature sets that cannot be compared (too few rows, different widths)."""


def _check(a: np.ndarray, b: np.ndarray, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DistanceError(f"feature sets must be (n, d) with the same d, got {a.shape} and {b.shape}")
    if len(a) < min_rows or len(b) < min_rows:
        raise DistanceError(f"need at least {min_rows} rows per set, got {len(a)} and {len(b)}")
    return a, b


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), clipped at 0 against rounding."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def knn_radii(x: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row."""
    x = np.asarray(x, np.float64)
    if not 1 <= k < len(x):
        raise DistanceError(f"k must be in [1, n-1] = [1, {len(x) - 1}], got {k}")
    out = np.empty(len(x))
    for s in range(0, len(x), _CHUNK):
        d = _sq_dists(x[s : s + _CHUNK], x)
        # the row itself is at distance 0 and sorts first: the k-th neighbour is index k
        out[s : s + _CHUNK] = np.partition(d, k, axis=1)[:, k]
    return out


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """Share of ``points`` inside at least one ball (centre, radius²)."""
    inside = np.zeros(len(points), bool)
    for s in range(0, len(points), _CHUNK):
        d = _sq_dists(points[s : s + _CHUNK], centres)
        inside[s : s + _CHUNK] = (d <= radii[None, :]).any(1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = DEFAULT_K) -> dict[str, Any]:
    """Kynkäänniemi et al. (2019) precision and recall with k-NN manifolds."""
    r, f = _check(real, fake, min_rows=k + 1)
    return {
        "precision": _coverage(f, r, knn_radii(r, k)),
        "recall": _coverage(r, f, knn_radii(f, k)),
        "k": k,
    }


def set_distances(
    real: np.ndarray,
    fake: np.ndarray,
    reference_fd: float | None = None,
    k: int = DEFAULT_K,
    kid_subsets: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """FD, KID, precision/recall of ``fake`` against ``real``; relative FD when given the
    real-vs-real ``reference_fd`` of the same n."""
    r, f = _check(real, fake, min_rows=k + 1)
    fd = fid_from_features(r, f)
    kid = kid_from_features(r, f, subsets=kid_subsets, subset_size=min(len(r), len(f)), seed=seed)
    out: dict[str, Any] = {
        "fd": fd,
        "relative_fd": (fd / reference_fd) if reference_fd and reference_fd > 0 else None,
        "kid": kid["mean"],
        "kid_sd": kid["sd"],
        **precision_recall(r, f, k),
        "n_real": len(r),
        "n_synthetic": len(f),
    }
    return out
