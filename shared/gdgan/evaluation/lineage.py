"""Lineage check: a GAN used for a split must have been trained on that split's training part.

The model manifests record the dataset id, the split seed and a fingerprint of the training
indices (``train_digest``); all three must match the split, otherwise the GAN may have seen
the validation or test images the classifier is scored on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gdgan.store import ArtifactStore


def _stage_manifests(store: ArtifactStore, model_id: str) -> list[Any]:
    m = store.manifest(model_id)
    if m.kind == "gdgan":
        return [store.manifest(m.meta["stage1"]), store.manifest(m.meta["stage2"])]
    return [m]


def check_lineage(
    store: ArtifactStore, model_id: str, dataset_id: str, split_seed: int, train_idx: np.ndarray
) -> dict[str, Any]:
    """{"ok": bool, "problems": [...], ...} for ``model_id`` against one split."""
    from gdgan.training.data import index_digest

    digest = index_digest(np.asarray(train_idx))
    problems: list[str] = []
    stages = []
    for m in _stage_manifests(store, model_id):
        got = {
            "id": m.id,
            "dataset_id": m.meta.get("dataset_id"),
            "split_seed": m.meta.get("split_seed"),
            "train_digest": m.meta.get("train_digest"),
        }
        stages.append(got)
        if got["dataset_id"] != dataset_id:
            problems.append(f"{m.id}: trained on dataset {got['dataset_id']!r}, evaluated on {dataset_id!r}")
        if got["split_seed"] != split_seed:
            problems.append(f"{m.id}: trained on split seed {got['split_seed']}, evaluated on {split_seed}")
        if got["train_digest"] != digest:
            problems.append(f"{m.id}: training indices differ from this split's training part")
    return {
        "model_id": model_id,
        "ok": not problems,
        "problems": problems,
        "expected": {"dataset_id": dataset_id, "split_seed": split_seed, "train_digest": digest},
        "stages": stages,
    }
