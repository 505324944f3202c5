"""Patient-wise splits: every image of a patient lands in the same part.

The authors split per image, so follow-ups of one patient sit in train and test and the test
AUC is optimistic. Here patients are shuffled with a seed and cut so that the *image* shares
come close to the requested fractions; ``k`` seeds give ``k`` repeat splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)


@dataclass(frozen=True)
class Split:
    """Sorted image indices of the train, validation and test parts."""

    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def part(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split part {name!r}; expected train, val or test")
        return getattr(self, name)


def _cut(patients: np.ndarray, counts: np.ndarray, fractions: tuple[float, ...]) -> list[np.ndarray]:
    """Assign shuffled patients to parts by cumulative image count."""
    cum = np.cumsum(counts) / max(1, counts.sum())
    bounds = np.cumsum(fractions)[:-1]
    part_of = np.searchsorted(bounds, cum - 1e-12, side="right")
    return [patients[part_of == k] for k in range(len(fractions))]


def patient_split(
    patient_ids: np.ndarray,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    official_split: np.ndarray | None = None,
) -> Split:
    """Seeded patient-wise train/val/test split.

    With ``official_split`` (1 = NIH train_val list, 2 = NIH test list, 0 = unlisted) the test
    part is NIH's official test list and train/val are cut patient-wise from the rest with the
    train:val ratio of ``fractions``.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    pid = np.asarray(patient_ids)
    rng = np.random.default_rng(seed)
    idx = np.arange(len(pid))
    if official_split is not None and np.any(official_split > 0):
        off = np.asarray(official_split)
        test = idx[off == 2]
        rest = idx[off != 2]
        uniq, inv, counts = np.unique(pid[rest], return_inverse=True, return_counts=True)
        order = rng.permutation(len(uniq))
        tv = fractions[0] + fractions[1]
        train_p, val_p = _cut(uniq[order], counts[order], (fractions[0] / tv, fractions[1] / tv))
        in_train = np.isin(pid[rest], train_p)
        train, val = rest[in_train], rest[~in_train]
        del val_p, inv
        return Split(seed, np.sort(train), np.sort(val), np.sort(test))
    uniq, counts = np.unique(pid, return_counts=True)
    order = rng.permutation(len(uniq))
    parts = _cut(uniq[order], counts[order], tuple(fractions))
    out = [np.sort(idx[np.isin(pid, p)]) for p in parts]
    return Split(seed, out[0], out[1], out[2])


def repeat_splits(patient_ids: np.ndarray, repeats: int, base_seed: int = 0, **kwargs: object) -> list[Split]:
    """``repeats`` different patient-wise splits (seeds base_seed .. base_seed + repeats - 1)."""
    return [patient_split(patient_ids, seed=base_seed + r, **kwargs) for r in range(repeats)]  # type: ignore[arg-type]
