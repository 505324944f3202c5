"""Drawing labelled synthetic images from a trained generator, deterministically.

Requests are grouped by (gender, view[, finding]) so each group is one seeded ``sample`` call;
the seed of group k is ``seed + k``, so the same plan always gives the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdgan.labels import GENDERS, VIEWS


@dataclass
class SyntheticSet:
    images: np.ndarray  # (n, S, S) uint8 at the requested size
    gender: np.ndarray  # (n,) uint8
    view: np.ndarray  # (n,) uint8
    target: np.ndarray  # (n,) uint8 — 1 when the target finding was requested
    model_id: str


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1] == size:
        return images
    from gdgan.training.data import resize_uint8

    return resize_uint8(images, size)


def sample_labelled(
    gen: object,
    finding: str,
    gender: np.ndarray,
    view: np.ndarray,
    target: np.ndarray,
    seed: int,
    size: int,
) -> SyntheticSet:
    """Images with exactly the given per-image (gender, view, target) labels, in that order."""
    gender = np.asarray(gender, dtype=np.uint8)
    view = np.asarray(view, dtype=np.uint8)
    target = np.asarray(target, dtype=np.uint8)
    n = len(gender)
    out = np.zeros((n, size, size), dtype=np.uint8)
    key = gender.astype(int) * 4 + view.astype(int) * 2 + target.astype(int)
    for k in range(8):
        rows = np.flatnonzero(key == k)
        if rows.size == 0:
            continue
        g, v, t = k // 4, (k // 2) % 2, k % 2
        schema = getattr(gen, "schema", None)  # a model without sex/view: those codes are all 0
        batch = gen.sample(  # type: ignore[attr-defined]
            int(rows.size),
            finding=finding if t else None,
            gender=GENDERS[g] if schema is None or schema.has("gender") else None,
            view=VIEWS[v] if schema is None or schema.has("view") else None,
            seed=seed + k,
        )
        out[rows] = _resize(np.asarray(batch.images), size)
    return SyntheticSet(out, gender, view, target, getattr(gen, "model_id", "?"))


def labels_like(
    gender: np.ndarray, view: np.ndarray, target: np.ndarray, n: int, seed: int, balanced: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` label rows drawn (with replacement) from real rows; ``balanced`` = half positives,
    each half with the (gender, view) mix of the real rows of that class."""
    rng = np.random.default_rng(seed)
    t = np.asarray(target).astype(bool)
    if balanced and t.any() and (~t).any():
        n_pos = n // 2
        rows = np.concatenate(
            [rng.choice(np.flatnonzero(t), n_pos), rng.choice(np.flatnonzero(~t), n - n_pos)]
        )
    else:
        rows = rng.choice(len(t), n)
    return (
        np.asarray(gender)[rows].astype(np.uint8),
        np.asarray(view)[rows].astype(np.uint8),
        t[rows].astype(np.uint8),
    )
