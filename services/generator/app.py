"""The generation service: N images for a label request, batched across concurrent requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from gdgan import __version__, catalog
from gdgan.labels import LabelError
from gdgan.memory import limit_malloc_arenas
from gdgan.schemas import GenerateRequest, GeneratorModels, Health
from gdgan.settings import get_settings
from gdgan.store import StoreError, open_store

from services.common.auth import require
from services.common.headers import SecurityHeaders
from services.common.http import BodyLimitMiddleware, Metrics, field_error, install_error_handlers
from services.generator import render
from services.generator.batcher import Batcher, BatcherMetrics, QueueFull
from services.generator.deps import Authed, BatcherD, Cache, Generate, Read, Store
from services.generator.models import ModelCache

router = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Authed], tags=["generate"])

MEDIA = {"zip": "application/zip", "png": "image/png", "json": "application/json"}
RESPONSES: dict[int | str, dict] = {
    200: {
        "content": {m: {} for m in MEDIA.values()},
        "description": "zip: PNGs + labels.csv; png: labelled grid; json: base64 PNGs with labels",
    },
    404: {"description": "unknown model"},
    503: {"description": "queue full (see Retry-After)"},
}


def _label_error(exc: LabelError) -> HTTPException:
    return field_error(exc.field or "finding", str(exc), "unknown_label")


@v1.post("/generate", response_class=Response, responses=RESPONSES, dependencies=[Generate])
async def generate(req: GenerateRequest, cache: Cache, batcher: BatcherD) -> Response:
    """Generate ``n`` images for the labels; the same request with the same seed gives the same bytes."""
    model_id = await asyncio.to_thread(cache.resolve, req.model)
    gen = await asyncio.to_thread(cache.get, model_id)
    if req.stage == 1 and 1 not in gen.stages:
        raise field_error("stage", f"model {model_id} ({gen.kind}) has no stage 1")
    if req.stage == 2 and 2 not in gen.stages:
        raise field_error("stage", f"model {model_id} ({gen.kind}) is stage-1 only: use stage 1")
    try:
        prepared = gen.prepare(
            req.n, finding=req.finding, gender=req.gender, view=req.view, seed=req.seed, age_band=req.age_band
        )
    except LabelError as exc:  # a label the model's own schema lacks: 422 naming it, listing its labels
        raise _label_error(exc) from None
    try:
        images = await batcher.submit(gen, req.stage, prepared)
    except QueueFull as exc:
        return JSONResponse(
            {"detail": f"{exc}; retry shortly"}, status_code=503, headers={"Retry-After": "1"}
        )
    labels = render.labels_of(prepared.general, prepared.detail, gen.schema)
    if req.format == "zip":
        body = await asyncio.to_thread(render.as_zip, images, labels, model_id, prepared.seed, req.stage)
    elif req.format == "png":
        body = await asyncio.to_thread(render.as_grid, images, labels)
    else:
        body = await asyncio.to_thread(render.as_json, images, labels, model_id, prepared.seed, req.stage)
    headers = {
        "X-GDGAN-Model-Id": model_id,
        "X-GDGAN-Seed": str(prepared.seed),
        "X-GDGAN-N": str(req.n),
        "X-GDGAN-Stage": str(req.stage),
    }
    if req.format != "json":
        headers["Content-Disposition"] = f'attachment; filename="{model_id}-seed{prepared.seed}.{req.format}"'
    return Response(body, media_type=MEDIA[req.format], headers=headers)


@v1.get("/models", response_model=GeneratorModels, dependencies=[Read])
def models(cache: Cache, store: Store) -> GeneratorModels:
    return GeneratorModels(loaded=cache.loaded(), available=catalog.list_models(store))


@router.get("/healthz", response_model=Health, tags=["health"])
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}}, tags=["health"])
def readyz(store: Store) -> JSONResponse:
    try:
        store.ping()
        return JSONResponse(Health(status="ready", checks={"store": "ok"}).model_dump())
    except StoreError as exc:
        body = Health(status="unavailable", checks={"store": f"unavailable: {exc}"})
        return JSONResponse(body.model_dump(), status_code=503)


def create_app() -> FastAPI:
    settings = get_settings()
    limit_malloc_arenas(settings.generator_malloc_arenas)  # before the thread pools exist
    metrics = Metrics("generator")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.num_threads:
            import torch

            torch.set_num_threads(settings.num_threads)
        app.state.batcher.start()
        yield
        await app.state.batcher.stop()

    app = FastAPI(
        title="GDGAN generation service",
        version=__version__,
        lifespan=lifespan,
        description="Synthetic chest X-rays by label from stored GDGAN / ACGAN generators.",
    )
    app.state.store = open_store(service=True)
    app.state.cache = ModelCache(app.state.store, settings.model_cache_size, settings.generate_alias_ttl_s)
    app.state.batcher = Batcher(
        settings.generate_max_batch,
        settings.generate_max_wait_ms / 1000.0,
        settings.generate_queue_size,
        BatcherMetrics(metrics.registry),
    )
    install_error_handlers(app)
    metrics.install(app, guard=None if settings.metrics_public else [require("admin")])
    app.include_router(router)
    app.include_router(v1)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
