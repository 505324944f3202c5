"""One call from stored models to :class:`QualityScores`: the CLI's and the report's entry.

``score_models(store, ["gdgan", "acgan"])`` resolves ids/aliases (or training run ids), finds the
dataset and the split each model was trained on (from its manifest: dataset id, split seed and
training-index fingerprint), gets the cached judge of that split and scores the models. The
result can be stored as a ``quality`` artifact whose parents are the models and the judge.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gdgan.data.dataset import ImageDataset, load_dataset
from gdgan.data.splits import Split, patient_split
from gdgan.evaluation.harness import DEFAULT_N, HarnessError, QualityScores, score_generators
from gdgan.evaluation.judge import JUDGE_PRESETS, JudgeConfig, get_judge
from gdgan.progress import ProgressCallback, no_progress
from gdgan.store import ArtifactStore, Manifest

QUALITY_KIND = "quality"
QUALITY_FILE = "quality.json"
ROLE_OF_KIND = {"gdgan": "stage2", "gdgan-stage2": "stage2", "gdgan-stage1": "stage1", "acgan": "acgan"}


def resolve_ref(store: ArtifactStore, ref: str) -> Manifest:
    """A model id or alias, or a training run id (its most complete model)."""
    from gdgan.training.sampling import ModelNotFound, resolve_model

    try:
        return resolve_model(store, ref)
    except ModelNotFound:
        pass
    by_run = [m for m in store.list() if m.kind in ROLE_OF_KIND and m.meta.get("run_id") == ref]
    if not by_run:
        raise HarnessError(f"model: no model, alias or training run {ref!r} in the store")
    order = {"gdgan-stage2": 0, "acgan": 1, "gdgan-stage1": 2}
    return sorted(by_run, key=lambda m: order.get(m.kind, 9))[0]


def _train_meta(store: ArtifactStore, m: Manifest) -> dict[str, Any]:
    """dataset id, split seed and training fingerprint (a bundle: those of its stage 2)."""
    src = store.manifest(m.meta["stage2"]) if m.kind == "gdgan" and m.meta.get("stage2") else m
    return {
        "dataset_id": src.meta.get("dataset_id"),
        "split_seed": src.meta.get("split_seed"),
        "train_digest": src.meta.get("train_digest"),
    }


def model_split(ds: ImageDataset, split_seed: int, train_digest: str | None = None) -> Split:
    """The split a model was trained on: ``train()``'s own (NIH official test list when the
    dataset has one) or the evaluation's plain patient split, whichever matches the fingerprint."""
    from gdgan.training.data import index_digest

    official = ds.labels.get("official_split")
    candidates = [patient_split(ds.labels["patient_id"], split_seed, official_split=official)]
    if official is not None:
        candidates.append(patient_split(ds.labels["patient_id"], split_seed))
    for s in candidates:
        if train_digest is None or index_digest(s.train) == train_digest:
            return s
    raise HarnessError(
        f"split: no split with seed {split_seed} matches the model's training indices "
        f"({train_digest}); was it trained on custom indices?"
    )


def judge_config(preset: str | JudgeConfig | None) -> JudgeConfig:
    if isinstance(preset, JudgeConfig):
        return preset
    name = preset or "demo"
    if name not in JUDGE_PRESETS:
        raise HarnessError(f"judge preset: unknown {name!r}; known: {', '.join(JUDGE_PRESETS)}")
    return JUDGE_PRESETS[name]


def score_models(
    store: ArtifactStore,
    refs: list[str],
    *,
    dataset: str | ImageDataset | None = None,
    split_seed: int | None = None,
    n: int = DEFAULT_N,
    seed: int = 0,
    judge: str | JudgeConfig | None = None,
    finding: str = "Cardiomegaly",
    progress: ProgressCallback = no_progress,
    device: str = "cpu",
) -> QualityScores:
    """Score stored models (ids, aliases, run ids) with the cached judge of their split."""
    from gdgan.training.sampling import load_generator

    if not refs:
        raise HarnessError("model: give at least one model id, alias or run id")
    manifests = [resolve_ref(store, r) for r in refs]
    roles: dict[str, Manifest] = {}
    for m in manifests:
        role = ROLE_OF_KIND[m.kind]
        if role in roles:
            raise HarnessError(f"model: two {role} models given ({roles[role].id}, {m.id}); score one each")
        roles[role] = m
    metas = [_train_meta(store, m) for m in manifests]
    ds_id = dataset.id if isinstance(dataset, ImageDataset) else dataset
    ds_id = ds_id or metas[0]["dataset_id"]
    if not ds_id:
        raise HarnessError("dataset: the model does not name its dataset; pass --dataset")
    ds = dataset if isinstance(dataset, ImageDataset) else load_dataset(store, ds_id)
    seed_s = split_seed if split_seed is not None else metas[0]["split_seed"]
    if seed_s is None:
        raise HarnessError("split seed: the model does not name its split; pass --split-seed")
    digest = metas[0]["train_digest"] if (metas[0]["dataset_id"] == ds_id and split_seed is None) else None
    split = model_split(ds, int(seed_s), digest)
    for m, meta in zip(manifests, metas):
        if meta["dataset_id"] and meta["dataset_id"] != ds_id:
            raise HarnessError(f"model {m.id} was trained on {meta['dataset_id']}, not on {ds_id}")
    j = get_judge(store, ds, split, judge_config(judge), finding=finding, progress=progress)
    gens = {role: load_generator(store, m.id, device=device) for role, m in roles.items()}
    return score_generators(
        j,
        gens.get("stage1"),
        gens.get("stage2"),
        gens.get("acgan"),
        ds=ds,
        split=split,
        n=n,
        seed=seed,
        progress=progress,
    )


def store_scores(store: ArtifactStore, scores: QualityScores) -> str:
    """Keep the figures as a ``quality`` artifact (models are immutable; this names them)."""
    parents = sorted(set(scores.model_ids.values()))
    if scores.judge.get("artifact_id"):
        parents.append(scores.judge["artifact_id"])
    with store.writer(QUALITY_KIND) as w:
        w.put_json(QUALITY_FILE, scores.to_dict())
        m = w.commit(
            config={"n": scores.n, "seed": scores.seed, "split_seed": scores.split_seed},
            parents=parents,
            meta={"dataset_id": scores.dataset_id, "headline": _jsonable(scores.headline())},
        )
    return m.id


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, np.generic):
        return x.item()
    return x
