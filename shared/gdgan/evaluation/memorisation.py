"""Memorisation audit: do synthetic images copy training patients?

For every synthetic image we find its nearest training image, in pixel space (RMS difference
of [0, 1] intensities) and in the domain network's feature space (Euclidean). Real test images
are unseen patients, so their test→train nearest distances say how close an honest new image
gets; a synthetic image closer than the 1st percentile of those is flagged, and exact copies
(distance 0) are counted separately.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _flat(images: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images))
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return x.reshape(x.shape[0], -1).float()


def nearest(queries: np.ndarray, reference: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query's nearest reference row (Euclidean), in chunks."""
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32))
    r = torch.as_tensor(np.asarray(reference, dtype=np.float32))
    if len(r) == 0:
        raise ValueError("nearest-neighbour search needs a non-empty reference set")
    dists, idx = [], []
    for i in range(0, len(q), chunk):
        qc = q[i : i + chunk].double()
        j = torch.cdist(qc, r.double()).argmin(dim=1)
        # cdist's matrix-product shortcut is not exact; recompute the winning pair directly so an
        # exact copy has distance 0.
        dists.append((qc - r[j].double()).norm(dim=1))
        idx.append(j)
    if not dists:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return torch.cat(dists).numpy(), torch.cat(idx).numpy()


def pixel_vectors(images: np.ndarray) -> np.ndarray:
    """Flattened [0, 1] images scaled by 1/√d so distances are RMS intensity differences."""
    x = _flat(images)
    return (x / np.sqrt(x.shape[1])).numpy()


def audit_space(
    train: np.ndarray,
    test: np.ndarray,
    synthetic: np.ndarray,
    percentile: float = 1.0,
    closest: int = 8,
    exact_tol: float = 1e-9,
) -> dict[str, Any]:
    """Compare synthetic→train with test→train nearest distances in one representation."""
    d_test, _ = nearest(test, train)
    d_syn, j_syn = nearest(synthetic, train)
    thr = float(np.percentile(d_test, percentile))
    flagged = d_syn < thr
    exact = d_syn <= exact_tol
    order = np.argsort(d_syn, kind="stable")[:closest]
    return {
        "threshold_percentile": percentile,
        "threshold": thr,
        "n_train": len(train),
        "n_test": len(test),
        "n_synthetic": len(synthetic),
        "share_flagged": float(flagged.mean()) if len(d_syn) else 0.0,
        "n_flagged": int(flagged.sum()),
        "n_exact_copies": int(exact.sum()),
        "flagged_indices": [int(i) for i in np.flatnonzero(flagged)[:100]],
        "test_to_train": _summary(d_test),
        "synthetic_to_train": _summary(d_syn),
        "closest_pairs": [
            {"synthetic": int(i), "train": int(j_syn[i]), "distance": float(d_syn[i])} for i in order
        ],
    }


def _summary(d: np.ndarray) -> dict[str, float]:
    if len(d) == 0:
        return {}
    q = np.percentile(d, [1, 5, 50])
    return {
        "min": float(d.min()),
        "p1": float(q[0]),
        "p5": float(q[1]),
        "median": float(q[2]),
        "mean": float(d.mean()),
    }


def memorisation_audit(
    train_images: np.ndarray,
    test_images: np.ndarray,
    synthetic_images: np.ndarray,
    train_features: np.ndarray | None = None,
    test_features: np.ndarray | None = None,
    synthetic_features: np.ndarray | None = None,
    percentile: float = 1.0,
    closest: int = 8,
) -> dict[str, Any]:
    """Pixel-space audit, plus feature-space audit when features are given."""
    out: dict[str, Any] = {
        "pixel": audit_space(
            pixel_vectors(train_images),
            pixel_vectors(test_images),
            pixel_vectors(synthetic_images),
            percentile,
            closest,
        )
    }
    if train_features is not None and test_features is not None and synthetic_features is not None:
        out["feature"] = audit_space(train_features, test_features, synthetic_features, percentile, closest)
    return out
