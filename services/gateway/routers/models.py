"""Models (manifest, metrics, lineage, a sample grid), reports and synthetic sets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from gdgan import catalog
from gdgan.imageset import SYNTHETIC_KIND, ZIP_FILE
from gdgan.schemas import LossCurves, ModelDetail, ModelList, ModelSummary
from gdgan.store import ArtifactNotFound, ArtifactStore, Manifest
from gdgan.training.loss_curves import loss_curves, quality_curves

from services.gateway.deps import Caller, Read, SettingsD, Store, checked_id
from services.gateway.routers.generate import forward_generate

NOT_FOUND = {404: {"description": "unknown id"}}

router = APIRouter(tags=["models"], dependencies=[Read])


def _lineage(store: ArtifactStore, m: Manifest, depth: int = 8) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = {m.id}
    frontier = list(m.parents)
    while frontier and len(out) < 32 and depth > 0:
        nxt: list[str] = []
        for pid in frontier:
            if pid in seen:
                continue
            seen.add(pid)
            try:
                pm = store.manifest(pid)
            except ArtifactNotFound:
                out.append({"id": pid, "kind": None, "created": None, "missing": True})
                continue
            out.append({"id": pm.id, "kind": pm.kind, "created": pm.created})
            nxt.extend(pm.parents)
        frontier = nxt
        depth -= 1
    return out


@router.get("/v1/models", response_model=ModelList)
def list_models(store: Store) -> ModelList:
    return ModelList(models=catalog.list_models(store))


@router.get("/v1/models/{model_id}", response_model=ModelDetail, responses=NOT_FOUND)
def show_model(model_id: str, store: Store) -> ModelDetail:
    """``model_id`` may also be an alias ('gdgan', 'acgan'): the latest model of that kind."""
    m = catalog.resolve_model(store, model_id)
    return ModelDetail(
        **catalog.summary(m).model_dump(),
        config=m.config,
        meta=m.meta,
        parents=m.parents,
        lineage=_lineage(store, m),
        files={k: v.size for k, v in m.files.items()},
    )


@router.get(
    "/v1/models/{model_id}/samples.png",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}, "description": "a labelled grid of samples"}},
)
async def model_samples(
    model_id: str, request: Request, store: Store, settings: SettingsD, who: Caller
) -> Response:
    """The grid the training run stored; models without one are sampled by the generator (seed 0)."""
    import asyncio

    m = await asyncio.to_thread(catalog.resolve_model, store, model_id)
    if "samples.png" in m.files:
        data = await asyncio.to_thread(store.get_bytes, m.id, "samples.png")
        return Response(data, media_type="image/png")
    body = {"model": m.id, "n": 16, "seed": 0, "format": "png", "finding": None}
    return await forward_generate(body, request, settings, who)


@router.get("/v1/models/{model_id}/losses", response_model=LossCurves, responses=NOT_FOUND)
def model_losses(
    model_id: str, store: Store, max_points: int = Query(400, ge=2, le=5000, description="points per curve")
) -> LossCurves:
    """The loss curves the training run recorded, per phase (a GDGAN bundle: its two stages), and
    the quality harness's curves when it scored the run as it trained."""
    m = catalog.resolve_model(store, model_id)
    return LossCurves(
        model_id=m.id, phases=loss_curves(store, m, max_points=max_points), quality=quality_curves(store, m)
    )


@router.get(
    "/v1/models/{model_id}/quality_curve.png",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}, "description": "quality over training"}},
)
def model_quality_curve(model_id: str, store: Store) -> Response:
    """The harness figures over training (stored when the run had ``quality_every`` > 0)."""
    m = catalog.resolve_model(store, model_id)
    if "quality_curve.png" not in m.files:
        raise ArtifactNotFound(f"model {m.id!r} has no quality curve (trained with quality_every=0)")
    return Response(store.get_bytes(m.id, "quality_curve.png"), media_type="image/png")


@router.get("/v1/reports/{report_id}", responses=NOT_FOUND)
def show_report(report_id: str, store: Store) -> dict[str, Any]:
    m = _report_manifest(store, report_id)
    data = store.get_json(m.id, "report.json")
    return {"id": m.id, "created": m.created, **(data if isinstance(data, dict) else {"report": data})}


@router.get("/v1/reports/{report_id}/html", response_class=HTMLResponse, responses=NOT_FOUND)
def show_report_html(report_id: str, store: Store) -> HTMLResponse:
    m = _report_manifest(store, report_id)
    return HTMLResponse(store.get_bytes(m.id, "report.html").decode("utf-8", "replace"))


@router.get("/v1/reports/{report_id}/files/{name}", response_class=Response, responses=NOT_FOUND)
def report_file(report_id: str, name: str, store: Store) -> Response:
    """Figures the HTML report links to (roc.png, ...)."""
    m = _report_manifest(store, report_id)
    if name not in m.files:
        raise ArtifactNotFound(f"report {m.id!r} has no file {name[:100]!r}")
    media = {"png": "image/png", "json": "application/json", "html": "text/html", "csv": "text/csv"}
    return Response(
        store.get_bytes(m.id, name), media_type=media.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    )


@router.get("/v1/reports", response_model=list[ModelSummary])
def list_reports(store: Store) -> list[ModelSummary]:
    return [catalog.summary(m) for m in reversed(store.list("report"))]


def _report_manifest(store: ArtifactStore, report_id: str) -> Manifest:
    checked_id(report_id, "report")
    m = store.manifest(report_id)
    if m.kind != "report":
        raise ArtifactNotFound(f"no report {report_id!r} (it is a {m.kind!r})")
    return m


@router.get(
    "/v1/synthetic/{artifact_id}/images.zip",
    response_class=FileResponse,
    responses={**NOT_FOUND, 200: {"content": {"application/zip": {}}, "description": "PNGs plus labels.csv"}},
)
def synthetic_zip(artifact_id: str, store: Store) -> FileResponse:
    """Streamed from a verified local copy (the store's own file, or S3's cached download): a
    100,000-image set never sits in the gateway's memory."""
    checked_id(artifact_id, "synthetic set")
    m = store.manifest(artifact_id)
    if m.kind != SYNTHETIC_KIND:
        raise ArtifactNotFound(f"no synthetic set {artifact_id!r}")
    return FileResponse(store.fetch(m.id, ZIP_FILE), media_type="application/zip", filename=f"{m.id}.zip")
