"""Datasets: create (an ingest job), list, show counts per label and split."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from fastapi import APIRouter, HTTPException
from gdgan.data.dataset import DATASET_KIND, LABELS_FILE
from gdgan.labels import schema_of
from gdgan.schemas import (
    DatasetCreated,
    DatasetDetail,
    DatasetRequest,
    DatasetSummary,
    LabelSchemaOut,
    NihDatasetRequest,
)
from gdgan.settings import Settings
from gdgan.store import ArtifactNotFound, ArtifactStore, Manifest, new_id

from services.gateway.deps import Auth, Jobs, SettingsD, Store, checked_id, enqueue

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[Auth])


def _summary(m: Manifest) -> DatasetSummary:
    return DatasetSummary(
        id=m.id,
        created=m.created,
        config=m.config,
        n=m.meta.get("n"),
        size=m.meta.get("size"),
        labels=LabelSchemaOut(**schema_of(m.meta).to_dict()),
    )


def dataset_manifest(store: ArtifactStore, dataset_id: str) -> Manifest:
    checked_id(dataset_id, "dataset")
    m = store.manifest(dataset_id)
    if m.kind != DATASET_KIND:
        raise ArtifactNotFound(f"no dataset {dataset_id!r} (it is a {m.kind!r})")
    return m


def _inside(root: Path, given: str, field: str) -> str:
    """Resolve ``given`` under ``root``; anything outside (.., symlinks, absolute paths) is a 422."""
    root = root.resolve()
    p = Path(given)
    p = (p if p.is_absolute() else root / p).resolve()
    if p != root and root not in p.parents:
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["body", field],
                    "type": "path_outside_import_dir",
                    "msg": f"{field} must be inside the import folder {root}",
                }
            ],
        )
    if not p.exists():
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["body", field],
                    "type": "path_missing",
                    "msg": f"{field}: {given!r} does not exist in the import folder",
                }
            ],
        )
    return str(p)


def import_root(settings: Settings) -> Path:
    return settings.import_dir or (settings.data_dir / "imports")


@router.post("", status_code=202, response_model=DatasetCreated)
def create_dataset(req: DatasetRequest, jobs: Jobs, settings: SettingsD) -> DatasetCreated:
    from gdgan.data.adapters import PATH_OPTIONS

    params = req.model_dump()
    paths = ("csv", "images") if isinstance(req, NihDatasetRequest) else PATH_OPTIONS.get(req.source, ())
    root = import_root(settings)
    for name in paths:
        if params.get(name) is not None:
            params[name] = _inside(root, params[name], name)
    params["dataset_id"] = new_id(DATASET_KIND)
    rec = jobs.create("ingest", params)
    enqueue(jobs, rec.id, "gdgan.ingest")
    return DatasetCreated(job_id=rec.id, dataset_id=params["dataset_id"])


@router.get("", response_model=list[DatasetSummary])
def list_datasets(store: Store) -> list[DatasetSummary]:
    return [_summary(m) for m in reversed(store.list(DATASET_KIND))]


@lru_cache(maxsize=32)
def _split_counts(store: ArtifactStore, dataset_id: str, sha: str) -> dict[str, dict]:
    """Per-split label counts (seed 0). Keyed by the labels' sha256: artifacts are immutable."""
    from gdgan.data.dataset import label_counts
    from gdgan.data.splits import patient_split
    from gdgan.labels import schema_of

    schema = schema_of(store.manifest(dataset_id).meta)
    with np.load(store.fetch(dataset_id, LABELS_FILE), allow_pickle=False) as z:
        labels = {k: z[k] for k in z.files}
    split = patient_split(labels["patient_id"], seed=0, official_split=labels.get("official_split"))
    out: dict[str, dict] = {}
    for part in ("train", "val", "test"):
        idx = split.part(part)
        counts = label_counts(
            schema,
            labels["patient_id"][idx],
            labels["gender"][idx],
            labels["view"][idx],
            labels["findings"][idx],
        )
        out[part] = {k: counts[k] for k in ("images", "patients", "gender", "view", "findings")}
    return out


@router.get("/{dataset_id}", response_model=DatasetDetail, responses={404: {"description": "unknown id"}})
def show_dataset(dataset_id: str, store: Store) -> DatasetDetail:
    m = dataset_manifest(store, dataset_id)
    splits = _split_counts(store, m.id, m.files[LABELS_FILE].sha256)
    return DatasetDetail(**_summary(m).model_dump(), counts=m.meta.get("counts", {}), splits=splits)
