"""Jobs: create (train, evaluate, generate), list, show, progress as SSE, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis.asyncio as aredis
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from gdgan import catalog
from gdgan.jobs import heartbeat
from gdgan.jobs.records import JobConflict, JobNotFound, JobStore, events_key
from gdgan.schemas import (
    TERMINAL,
    CancelResponse,
    EvaluateRequest,
    GenerateJobRequest,
    JobCreated,
    JobList,
    JobRecord,
    JobStatus,
    JobType,
    TrainRequest,
)
from gdgan.store import ArtifactStore
from sse_starlette.sse import EventSourceResponse

from services.common.http import field_error
from services.gateway.deps import Auth, Jobs, SettingsD, Store, checked_id, enqueue
from services.gateway.routers.datasets import dataset_manifest

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Auth])

NOT_FOUND = {404: {"description": "unknown id"}}
BLOCK_MS = 5000  # one XREAD wait; between waits the stream checks for a disconnected client


def _get_job(jobs: JobStore, job_id: str) -> JobRecord:
    checked_id(job_id, "job")
    try:
        return jobs.get(job_id)
    except JobNotFound as exc:
        raise HTTPException(404, detail=str(exc)) from None


@router.post("/train", status_code=202, response_model=JobCreated, responses=NOT_FOUND)
def create_train(req: TrainRequest, jobs: Jobs, store: Store) -> JobCreated:
    from gdgan.training.presets import ConfigError, get_config

    dataset_manifest(store, req.dataset_id)
    try:
        cfg = get_config(req.preset, req.overrides)
    except ConfigError as exc:
        raise field_error("overrides", str(exc)) from None
    if cfg.batch_size % req.nproc_per_node:
        raise field_error(
            "nproc_per_node", f"the global batch_size {cfg.batch_size} must divide by {req.nproc_per_node}"
        )
    if req.stage1_model:
        m = store.manifest(checked_id(req.stage1_model, "model"))
        if m.kind not in ("gdgan-stage1", "gdgan"):
            raise field_error("stage1_model", f"{m.id!r} is a {m.kind!r}, not a stage-1 model")
    elif req.model == "stage2":
        raise field_error("stage1_model", "model 'stage2' needs a stage1_model id")
    rec = jobs.create("train", req.model_dump())
    enqueue(jobs, rec.id, "gdgan.train")
    return JobCreated(job_id=rec.id)


def _check_model_kind(store: ArtifactStore, model_id: str | None, kind: str, field: str) -> None:
    if model_id is None:
        return
    m = store.manifest(checked_id(model_id, "model"))
    if m.kind != kind:
        raise field_error(field, f"{model_id!r} is a {m.kind!r}, not a {kind!r} model")


@router.post("/evaluate", status_code=202, response_model=JobCreated, responses=NOT_FOUND)
def create_evaluate(req: EvaluateRequest, jobs: Jobs, store: Store) -> JobCreated:
    from gdgan.evaluation.plan import EvaluationPlan
    from gdgan.labels import NIH_SCHEMA, LabelError, schema_of

    schema = schema_of(dataset_manifest(store, req.dataset_id).meta)
    try:  # any finding of the dataset's own label schema can be the target
        schema.finding_index(req.finding)
    except LabelError as exc:
        raise field_error("finding", str(exc)) from None
    _check_model_kind(store, req.gdgan, "gdgan", "gdgan")
    _check_model_kind(store, req.acgan, "acgan", "acgan")
    try:
        plan = EvaluationPlan(
            dataset_id=req.dataset_id,
            finding=req.finding,
            repeats=req.repeats,
            preset=req.preset,
            strategies=list(req.strategies),
            gdgan_model=req.gdgan,
            acgan_model=req.acgan,
            findings=None if schema == NIH_SCHEMA else list(schema.findings),
        )
    except ValueError as exc:
        raise field_error(None, str(exc).splitlines()[0]) from None
    rec = jobs.create("evaluate", {"request": req.model_dump(), "plan": plan.model_dump()})
    enqueue(jobs, rec.id, "gdgan.evaluate")
    return JobCreated(job_id=rec.id)


@router.post("/generate", status_code=202, response_model=JobCreated, responses=NOT_FOUND)
def create_generate(req: GenerateJobRequest, jobs: Jobs, store: Store) -> JobCreated:
    from gdgan.labels import LabelError, schema_of

    m = catalog.resolve_model(store, req.model)
    model_id, schema = m.id, schema_of(m.meta)
    findings = [] if req.finding is None else [req.finding] if isinstance(req.finding, str) else req.finding
    try:  # the model's own labels, checked now rather than failing the job later
        for f in findings:
            schema.finding_index(f)
        for name in ("gender", "view"):
            schema.check_general(name, getattr(req, name))
    except LabelError as exc:
        field = "finding" if "finding" in str(exc) else ("gender" if "gender" in str(exc) else "view")
        raise field_error(field, str(exc)) from None
    params = req.model_dump()
    params["model"] = model_id
    rec = jobs.create("generate", params)
    enqueue(jobs, rec.id, "gdgan.generate")
    return JobCreated(job_id=rec.id)


@router.get("", response_model=JobList)
def list_jobs(
    jobs: Jobs,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[JobType | None, Query()] = None,
    status: Annotated[JobStatus | None, Query()] = None,
) -> JobList:
    return JobList(jobs=[heartbeat.annotate(jobs.r, rec) for rec in jobs.list(limit, type, status)])


@router.get("/{job_id}", response_model=JobRecord, responses=NOT_FOUND)
def show_job(job_id: str, jobs: Jobs) -> JobRecord:
    """The record, plus who runs it now and whether that worker still beats (``stalled``)."""
    return heartbeat.annotate(jobs.r, _get_job(jobs, job_id))


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=CancelResponse,
    responses={**NOT_FOUND, 409: {"description": "the job already ended"}},
)
def cancel_job(job_id: str, jobs: Jobs) -> CancelResponse:
    _get_job(jobs, job_id)
    try:
        rec = jobs.request_cancel(job_id)
    except JobConflict as exc:
        raise HTTPException(409, detail=str(exc)) from None
    except JobNotFound as exc:
        raise HTTPException(404, detail=str(exc)) from None
    return CancelResponse(job_id=rec.id, status=rec.status, cancel_requested=True)


@router.get(
    "/{job_id}/preview.png",
    response_class=Response,
    responses={
        404: {"description": "unknown job, or no preview yet"},
        200: {"content": {"image/png": {}}, "description": "the latest sample grid of a training job"},
    },
)
def job_preview(job_id: str, jobs: Jobs) -> Response:
    """The training job's latest live sample grid (fixed seeds, the same label groups as the model's
    samples.png); its phase and step are in the X-GDGAN-Phase / X-GDGAN-Step headers. A ``preview``
    event on the job's event stream announces each new one."""
    _get_job(jobs, job_id)
    got = jobs.get_preview(job_id)
    if got is None:
        raise HTTPException(404, detail=f"job {job_id!r} has no preview yet")
    meta, png = got
    headers = {"X-GDGAN-Phase": meta["phase"], "X-GDGAN-Step": str(meta["step"]), "Cache-Control": "no-store"}
    return Response(png, media_type="image/png", headers=headers)


@router.get(
    "/{job_id}/events",
    responses={
        **NOT_FOUND,
        200: {
            "content": {"text/event-stream": {}},
            "description": "job, status, progress, part and cancel events",
        },
    },
)
async def job_events(
    job_id: str,
    request: Request,
    jobs: Jobs,
    settings: SettingsD,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Server-sent events until the job ends: first a ``job`` event with the whole record (unless
    resuming with Last-Event-ID), then each event as it is published."""
    await asyncio.to_thread(_get_job, jobs, job_id)
    key = events_key(job_id)
    client = aredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=BLOCK_MS / 1000 + 10,
    )

    async def stream() -> AsyncIterator[dict[str, Any]]:
        try:
            last = last_event_id if last_event_id and _is_stream_id(last_event_id) else None
            if last is None:
                newest = await client.xrevrange(key, "+", "-", count=1)
                last = newest[0][0] if newest else "0"
                rec = await asyncio.to_thread(jobs.get, job_id)
                yield {"event": "job", "id": last, "data": rec.model_dump_json()}
                if rec.status in TERMINAL:
                    return
            while True:
                if await request.is_disconnected():
                    return
                resp = await client.xread({key: last}, block=BLOCK_MS, count=100)
                for _s, items in resp or []:
                    for eid, fields in items:
                        last = eid
                        event = fields.get("event", "message")
                        data = fields.get("data", "{}")
                        yield {"event": event, "id": eid, "data": data}
                        if event == "status" and json.loads(data).get("status") in TERMINAL:
                            return
                if not resp:
                    rec = await asyncio.to_thread(jobs.get, job_id)
                    if rec.status in TERMINAL:
                        yield {"event": "job", "id": last, "data": rec.model_dump_json()}
                        return
        finally:
            await client.aclose()

    return EventSourceResponse(stream(), ping=15)


def _is_stream_id(value: str) -> bool:
    a, _, b = value.partition("-")
    return a.isdigit() and (b == "" or b.isdigit())
