"""The harness distances against independent references: SciPy's matrix square root, a direct
numpy KID, and precision/recall on planted distributions whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from gdgan.evaluation.distances import DistanceError, knn_radii, precision_recall, set_distances
from gdgan.evaluation.fid import fid_from_features, kid_from_features
from sklearn.neighbors import NearestNeighbors


def _fd_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """Closed form ||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½) with scipy.linalg.sqrtm."""
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fd_of_a_set_with_itself_is_zero() -> None:
    f = np.random.default_rng(0).normal(size=(300, 24))
    assert set_distances(f, f)["fd"] == pytest.approx(0.0, abs=1e-6)


def test_fd_matches_scipy_sqrtm_on_correlated_gaussians() -> None:
    rng = np.random.default_rng(1)
    d = 6
    la, lb = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    a = rng.normal(size=(2000, d)) @ la + 1.0
    b = rng.normal(size=(1500, d)) @ lb - 0.5
    assert fid_from_features(a, b) == pytest.approx(_fd_scipy(a, b), rel=1e-6)


def test_kid_equals_direct_unbiased_mmd() -> None:
    """One subset holding every row = the full-sample unbiased MMD² with k(x,y) = (x·y/d + 1)³."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 5)), rng.normal(0.3, 1.2, size=(60, 5))
    d, m = x.shape[1], len(x)

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / d + 1.0) ** 3

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    direct = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )
    got = kid_from_features(x, y, subsets=1, subset_size=m)["mean"]
    assert got == pytest.approx(direct, rel=1e-9)


def test_knn_radii_match_scikit_learn() -> None:
    x = np.random.default_rng(3).normal(size=(400, 7))
    dist, _ = NearestNeighbors(n_neighbors=4).fit(x).kneighbors(x)  # column 0 is the point itself
    np.testing.assert_allclose(np.sqrt(knn_radii(x, 3)), dist[:, 3], rtol=1e-9, atol=1e-9)


def test_precision_recall_disjoint_sets_are_zero() -> None:
    rng = np.random.default_rng(4)
    real = rng.normal(size=(500, 4))
    fake = rng.normal(size=(500, 4)) + 50.0
    pr = precision_recall(real, fake, k=3)
    assert pr["precision"] == 0.0 and pr["recall"] == 0.0


def test_precision_recall_same_distribution_near_one() -> None:
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    pr = precision_recall(real, fake, k=3)
    assert pr["precision"] > 0.9 and pr["recall"] > 0.9


def test_precision_recall_half_coverage_planted() -> None:
    """Real = two far clusters, equal weight; fake = one of them. Every fake point is realistic
    (precision ≈ 1) but only half the real data is covered (recall ≈ 0.5)."""
    rng = np.random.default_rng(6)
    a = rng.normal(size=(1000, 2))
    b = rng.normal(size=(1000, 2)) + 40.0
    real = np.concatenate([a, b])
    fake = rng.normal(size=(2000, 2))
    pr = precision_recall(real, fake, k=3)
    assert pr["precision"] > 0.9
    assert pr["recall"] == pytest.approx(0.5, abs=0.05)
    # and the mirror image: a generator that draws both clusters plus a far-off third one
    fake3 = np.concatenate(
        [rng.normal(size=(700, 2)), rng.normal(size=(700, 2)) + 40, rng.normal(size=(700, 2)) - 40]
    )
    pr3 = precision_recall(real, fake3, k=3)
    assert pr3["precision"] == pytest.approx(2 / 3, abs=0.05) and pr3["recall"] > 0.9


def test_relative_fd_and_errors() -> None:
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(300, 3)), rng.normal(size=(300, 3)) + 1.0
    out = set_distances(real, fake, reference_fd=0.5)
    assert out["relative_fd"] == pytest.approx(out["fd"] / 0.5)
    assert set_distances(real, fake)["relative_fd"] is None
    with pytest.raises(DistanceError, match="same d"):
        set_distances(real, fake[:, :2])
    with pytest.raises(DistanceError, match="at least"):
        precision_recall(real[:3], fake, k=3)
