"""What every step of the experiment rebuilds from the plan alone: the dataset (cached per
process), the repeat splits, the target column and the device.

Its own module so that :mod:`gdgan.evaluation.experiment` (the steps) and
:mod:`gdgan.evaluation.assemble` (the report) both depend on it and not on each other.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from gdgan.data.dataset import ImageDataset, load_dataset
from gdgan.data.splits import Split, repeat_splits
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.progress import Cancelled
from gdgan.store import ArtifactStore


class EvaluationCancelled(Cancelled):
    """should_stop() returned True."""


class EvaluationError(ValueError):
    """The plan cannot be run on this data (e.g. a split without positives); names the cause."""


_cache_lock = threading.Lock()
_ds_cache: dict[tuple[str, str], ImageDataset] = {}


def load_eval_dataset(store: ArtifactStore, dataset_id: str) -> ImageDataset:
    key = (getattr(store, "url", str(id(store))), dataset_id)
    with _cache_lock:
        if key not in _ds_cache:
            if len(_ds_cache) > 2:
                _ds_cache.clear()
            _ds_cache[key] = load_dataset(store, dataset_id, mmap=True)
        return _ds_cache[key]


def plan_splits(plan: EvaluationPlan, ds: ImageDataset) -> list[Split]:
    """``plan.repeats`` patient-wise 70/10/20 splits (seeds split_base_seed + r)."""
    return repeat_splits(ds.labels["patient_id"], plan.repeats, base_seed=plan.split_base_seed)


def target_column(plan: EvaluationPlan, ds: ImageDataset) -> np.ndarray:
    return np.asarray(ds.labels["findings"][:, ds.schema.finding_index(plan.finding)]).astype(np.uint8)


def plan_key(plan: EvaluationPlan) -> str:
    return hashlib.sha256(plan.model_dump_json().encode()).hexdigest()[:10]


def plan_device(plan: EvaluationPlan) -> str:
    from gdgan.settings import resolve_device

    return resolve_device(plan.device)
