"""The memorisation audit flags a planted exact training copy."""

from __future__ import annotations

import numpy as np
from gdgan.evaluation.memorisation import memorisation_audit, nearest


def test_nearest_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(30, 5)), rng.normal(size=(50, 5))
    d, j = nearest(q, r, chunk=7)
    full = np.linalg.norm(q[:, None] - r[None], axis=2)
    assert np.array_equal(j, full.argmin(1)) and np.allclose(d, full.min(1))


def test_planted_copy_is_flagged() -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (200, 16, 16), dtype=np.uint8)
    test = rng.integers(0, 256, (100, 16, 16), dtype=np.uint8)
    synthetic = rng.integers(0, 256, (50, 16, 16), dtype=np.uint8)
    synthetic[17] = train[42]  # an exact copy of a training image
    feats = lambda x: x.reshape(len(x), -1)[:, :32].astype(np.float64)  # noqa: E731
    out = memorisation_audit(train, test, synthetic, feats(train), feats(test), feats(synthetic), closest=3)
    for space in ("pixel", "feature"):
        a = out[space]
        assert 17 in a["flagged_indices"]
        assert a["n_exact_copies"] >= 1
        assert a["closest_pairs"][0] == {"synthetic": 17, "train": 42, "distance": 0.0}
    assert out["pixel"]["n_flagged"] < 10  # random images: only chance flags (1st percentile)


def test_no_copies_no_flags() -> None:
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (200, 8, 8), dtype=np.uint8)
    test = rng.integers(0, 256, (100, 8, 8), dtype=np.uint8)
    syn = rng.integers(0, 256, (100, 8, 8), dtype=np.uint8)
    out = memorisation_audit(train, test, syn)
    assert out["pixel"]["n_exact_copies"] == 0 and out["pixel"]["share_flagged"] < 0.05
