"""Datasets: create (an ingest job), list, show counts per label and split."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Query
from gdgan.data.dataset import DATASET_KIND, LABELS_FILE, load_labels, split_counts
from gdgan.labels import schema_of
from gdgan.schemas import (
    DatasetCreated,
    DatasetDeletion,
    DatasetDetail,
    DatasetRequest,
    DatasetSource,
    DatasetSources,
    DatasetSummary,
    LabelSchemaOut,
    NihDatasetRequest,
    dataset_request_models,
)
from gdgan.settings import Settings
from gdgan.store import ArtifactNotFound, ArtifactStore, Manifest, new_id
from gdgan.store.governance import DatasetInUse, delete_with_lineage

from services.common.http import field_error
from services.gateway.deps import (
    Admin,
    Authed,
    Caller,
    Jobs,
    Read,
    SettingsD,
    Store,
    Train,
    checked_id,
    create_job,
)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[Authed])


def _summary(m: Manifest) -> DatasetSummary:
    return DatasetSummary(
        id=m.id,
        created=m.created,
        config=m.config,
        n=m.meta.get("n"),
        size=m.meta.get("size"),
        labels=LabelSchemaOut.of(schema_of(m.meta)),
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
        raise field_error(
            field, f"{field} must be inside the import folder (GDGAN_IMPORT_DIR)", "path_outside_import_dir"
        )
    if not p.exists():
        raise field_error(field, f"{field}: {given!r} does not exist in the import folder", "path_missing")
    return str(p)


def import_root(settings: Settings) -> Path:
    return settings.import_dir or (settings.data_dir / "imports")


@router.post("", status_code=202, response_model=DatasetCreated, dependencies=[Train])
def create_dataset(req: DatasetRequest, jobs: Jobs, settings: SettingsD, who: Caller) -> DatasetCreated:
    from gdgan.data.adapters import PATH_OPTIONS

    params = req.model_dump()
    paths = ("csv", "images") if isinstance(req, NihDatasetRequest) else PATH_OPTIONS.get(req.source, ())
    root = import_root(settings)
    for name in paths:
        if params.get(name) is not None:
            params[name] = _inside(root, params[name], name)
    params["dataset_id"] = new_id(DATASET_KIND)
    rec = create_job(jobs, who, "ingest", params, "gdgan.ingest")
    return DatasetCreated(job_id=rec.id, dataset_id=params["dataset_id"])


@router.get("/sources", response_model=DatasetSources, dependencies=[Read])
def dataset_sources() -> DatasetSources:
    """Every source ``POST /v1/datasets`` accepts with the JSON Schema of its request, so a client
    (the web page's "New dataset" form) builds its fields from the API instead of a copy."""
    from gdgan.data.adapters import PATH_OPTIONS

    out = []
    for model in dataset_request_models():
        schema = model.model_json_schema()
        source = schema["properties"]["source"]["const"]
        paths = ["csv", "images"] if source == "nih" else list(PATH_OPTIONS.get(source, ()))
        doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
        out.append(DatasetSource(source=source, description=doc, path_fields=paths, json_schema=schema))
    return DatasetSources(sources=out)


@router.get("", response_model=list[DatasetSummary], dependencies=[Read])
def list_datasets(store: Store) -> list[DatasetSummary]:
    return [_summary(m) for m in reversed(store.list(DATASET_KIND))]


@lru_cache(maxsize=32)
def _split_counts(store: ArtifactStore, dataset_id: str, sha: str) -> dict[str, dict]:
    """Per-split label counts (seed 0). Keyed by the labels' sha256: artifacts are immutable."""
    return split_counts(load_labels(store, dataset_id), schema_of(store.manifest(dataset_id).meta), seed=0)


@router.get(
    "/{dataset_id}",
    response_model=DatasetDetail,
    responses={404: {"description": "unknown id"}},
    dependencies=[Read],
)
def show_dataset(dataset_id: str, store: Store) -> DatasetDetail:
    m = dataset_manifest(store, dataset_id)
    splits = _split_counts(store, m.id, m.files[LABELS_FILE].sha256)
    return DatasetDetail(**_summary(m).model_dump(), counts=m.meta.get("counts", {}), splits=splits)


@router.delete(
    "/{dataset_id}",
    dependencies=[Admin],  # removes everyone's models and reports derived from the dataset
    response_model=DatasetDeletion,
    responses={
        404: {"description": "unknown id, or not a dataset"},
        409: {"description": "a queued or running job uses the dataset or something derived from it"},
    },
)
def delete_dataset(
    dataset_id: str,
    store: Store,
    jobs: Jobs,
    dry_run: bool = Query(False, description="List what would be deleted; delete nothing."),
) -> DatasetDeletion:
    """The dataset and everything derived from it (models, checkpoints, synthetic sets, quality
    artifacts, evaluation parts and reports), children first; rerun after an interruption."""
    checked_id(dataset_id, "dataset")
    try:
        m = store.manifest(dataset_id)
    except ArtifactNotFound:
        m = None  # gone already, or an interrupted deletion to finish: the planner decides
    if m is not None and m.kind != DATASET_KIND:
        raise ArtifactNotFound(f"no dataset {dataset_id!r} (it is a {m.kind!r})")
    active = [r for r in jobs.list(limit=10_000) if r.status in ("queued", "running")]
    try:
        plan = delete_with_lineage(store, dataset_id, active_jobs=active, dry_run=dry_run)
    except DatasetInUse as exc:
        raise HTTPException(409, detail=str(exc)) from None
    _split_counts.cache_clear()
    return DatasetDeletion(dry_run=dry_run, **plan.to_dict())
