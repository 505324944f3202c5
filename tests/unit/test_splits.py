"""Patient-wise splits: no patient in two parts, fractions near 70/10/20, seeds differ, NIH lists."""

from __future__ import annotations

import numpy as np
import pytest
from gdgan.data.splits import patient_split, repeat_splits


def _patients(n_patients: int = 800, seed: int = 0) -> np.ndarray:
    """Realistic skew: most patients have 1-3 images, a few have dozens (as in NIH)."""
    rng = np.random.default_rng(seed)
    per = np.minimum(rng.geometric(0.35, n_patients), 40)
    return np.repeat(np.arange(n_patients) + 1000, per)


def _parts(split) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    return [split.train, split.val, split.test]


def test_no_patient_crosses_parts_and_all_images_used() -> None:
    pid = _patients()
    for seed in range(3):
        s = patient_split(pid, seed=seed)
        parts = _parts(s)
        assert sum(len(p) for p in parts) == len(pid)
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(pid)))
        sets = [set(pid[p].tolist()) for p in parts]
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
        for p in parts:
            assert np.all(np.diff(p) > 0)  # sorted, unique


def test_fractions_close_to_70_10_20() -> None:
    pid = _patients(3000)
    s = patient_split(pid, seed=0)
    frac = np.array([len(p) for p in _parts(s)]) / len(pid)
    assert np.allclose(frac, [0.7, 0.1, 0.2], atol=0.02), frac
    s2 = patient_split(pid, seed=0, fractions=(0.5, 0.25, 0.25))
    frac2 = np.array([len(p) for p in _parts(s2)]) / len(pid)
    assert np.allclose(frac2, [0.5, 0.25, 0.25], atol=0.02), frac2


def test_seeded_deterministic_and_seeds_differ() -> None:
    pid = _patients()
    a, b = patient_split(pid, seed=1), patient_split(pid, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(_parts(a), _parts(b)))
    reps = repeat_splits(pid, 3, base_seed=0)
    assert [r.seed for r in reps] == [0, 1, 2]
    tests = [set(r.test.tolist()) for r in reps]
    assert tests[0] != tests[1] and tests[1] != tests[2]


def test_official_lists_honoured() -> None:
    pid = _patients(500)
    rng = np.random.default_rng(3)
    # NIH's official lists are patient-wise too: mark ~25 % of patients as test.
    test_patients = rng.choice(np.unique(pid), size=125, replace=False)
    official = np.where(np.isin(pid, test_patients), 2, 1).astype(np.uint8)
    s = patient_split(pid, seed=0, official_split=official)
    assert np.array_equal(s.test, np.flatnonzero(official == 2))
    trainval = np.concatenate([s.train, s.val])
    assert np.all(official[trainval] == 1)
    assert not set(pid[s.train].tolist()) & set(pid[s.val].tolist())
    # train:val keeps 70:10
    assert abs(len(s.val) / len(trainval) - 0.125) < 0.03
    # All-zero official column = not given: an ordinary seeded split.
    plain = patient_split(pid, seed=0, official_split=np.zeros(len(pid), np.uint8))
    assert np.array_equal(plain.test, patient_split(pid, seed=0).test)


def test_bad_fractions_and_part_names() -> None:
    pid = _patients(50)
    with pytest.raises(ValueError, match="fractions"):
        patient_split(pid, fractions=(0.8, 0.3, 0.1))
    with pytest.raises(ValueError, match="'dev'"):
        patient_split(pid).part("dev")
    assert patient_split(pid).sizes()["train"] == len(patient_split(pid).part("train"))
