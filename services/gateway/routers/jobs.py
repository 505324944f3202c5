"""Jobs: create (train, evaluate, generate), list, show, progress as SSE, cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis.asyncio as aredis
from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request, Response
from gdgan import catalog
from gdgan.jobs import heartbeat
from gdgan.jobs.records import JobConflict, JobNotFound, JobStore, events_key, record_key
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
from gdgan.settings import Settings, get_settings
from gdgan.store import ArtifactStore
from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask

from services.common.http import field_error
from services.gateway.deps import (
    ARedis,
    Authed,
    Caller,
    Generate,
    Jobs,
    Read,
    SettingsD,
    Store,
    Train,
    checked_id,
    create_job,
)
from services.gateway.quotas import StreamSlot
from services.gateway.redact import public_event, public_record
from services.gateway.routers.datasets import dataset_manifest, import_root

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Authed])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "unknown id"}}
QUOTA: dict[int | str, dict[str, Any]] = {
    429: {"description": "a quota of this token is spent (concurrent jobs, jobs per hour): see Retry-After"}
}
SSE_CLIENT_NAME = "gdgan-sse"  # in Redis CLIENT LIST: how many connections the streams hold
BLOCK_MS = 5000  # one XREAD wait; between waits the stream checks for a disconnected client


def _get_job(jobs: JobStore, job_id: str) -> JobRecord:
    checked_id(job_id, "job")
    try:
        return jobs.get(job_id)
    except JobNotFound as exc:
        raise HTTPException(404, detail=str(exc)) from None


@router.post(
    "/train",
    status_code=202,
    response_model=JobCreated,
    responses={**NOT_FOUND, **QUOTA},
    dependencies=[Train],
)
def create_train(req: TrainRequest, jobs: Jobs, store: Store, who: Caller) -> JobCreated:
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
    rec = create_job(jobs, who, "train", req.model_dump(), "gdgan.train")
    return JobCreated(job_id=rec.id)


def _check_model_kind(store: ArtifactStore, model_id: str | None, kind: str, field: str) -> None:
    if model_id is None:
        return
    m = store.manifest(checked_id(model_id, "model"))
    if m.kind != kind:
        raise field_error(field, f"{model_id!r} is a {m.kind!r}, not a {kind!r} model")


@router.post(
    "/evaluate",
    status_code=202,
    response_model=JobCreated,
    responses={**NOT_FOUND, **QUOTA},
    dependencies=[Train],
)
def create_evaluate(req: EvaluateRequest, jobs: Jobs, store: Store, who: Caller) -> JobCreated:
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
    params = {"request": req.model_dump(), "plan": plan.model_dump()}
    rec = create_job(jobs, who, "evaluate", params, "gdgan.evaluate")
    return JobCreated(job_id=rec.id)


@router.post(
    "/generate",
    status_code=202,
    response_model=JobCreated,
    responses={**NOT_FOUND, **QUOTA},
    dependencies=[Generate],
)
def create_generate(req: GenerateJobRequest, jobs: Jobs, store: Store, who: Caller) -> JobCreated:
    from gdgan.labels import LabelError, schema_of

    m = catalog.resolve_model(store, req.model)
    model_id, schema = m.id, schema_of(m.meta)
    findings = [] if req.finding is None else [req.finding] if isinstance(req.finding, str) else req.finding
    try:  # the model's own labels, checked now rather than failing the job later
        for f in findings:
            schema.finding_index(f)
        for name in ("gender", "view", "age_band"):
            schema.check_general(name, getattr(req, name))
    except LabelError as exc:
        raise field_error(exc.field or "finding", str(exc)) from None
    params = req.model_dump()
    params["model"] = model_id
    rec = create_job(jobs, who, "generate", params, "gdgan.generate")
    return JobCreated(job_id=rec.id)


@router.get("", response_model=JobList, dependencies=[Read])
def list_jobs(
    jobs: Jobs,
    settings: SettingsD,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[JobType | None, Query()] = None,
    status: Annotated[JobStatus | None, Query()] = None,
) -> JobList:
    root = import_root(settings)
    return JobList(
        jobs=[
            public_record(heartbeat.annotate(jobs.r, rec), settings, root)
            for rec in jobs.list(limit, type, status)
        ]
    )


@router.get("/{job_id}", response_model=JobRecord, responses=NOT_FOUND, dependencies=[Read])
async def show_job(job_id: str, r: ARedis) -> Response:
    """The record, plus who runs it now and whether that worker still beats (``stalled``). Server
    paths in it are shown relative to the import folder (or as ``<data_dir>/...``).

    The hottest route (clients poll it), so it runs on the event loop with the shared async pool
    instead of a threadpool thread: one pipelined round trip reads the record and the running-task
    registry, a second (the workers' heartbeats) only while a worker holds the job. The record is
    validated once and serialized once (a returned model would be validated again against
    ``response_model``)."""
    checked_id(job_id, "job")
    async with r.pipeline(transaction=False) as pipe:
        pipe.get(record_key(job_id))
        pipe.hgetall(heartbeat.RUNNING)
        raw, running = await pipe.execute()
    if raw is None:
        raise HTTPException(404, detail=str(JobNotFound(f"no job {job_id!r}")))
    rec = JobRecord.model_validate_json(raw)
    mine = [] if rec.terminal else heartbeat.job_entries(running, job_id)
    if mine:
        workers = sorted({e["worker"] for e in mine})
        beats = await r.mget([heartbeat.worker_key(w) for w in workers])
        last = {w: (json.loads(b) if b else None) for w, b in zip(workers, beats)}
        rec = heartbeat.annotate_entries(rec, mine, last)
    settings = get_settings()  # not SettingsD: a sync dependency costs a threadpool hop
    rec = public_record(rec, settings, import_root(settings))
    return Response(rec.model_dump_json(), media_type="application/json")


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=CancelResponse,
    responses={
        **NOT_FOUND,
        403: {"description": "neither the token that created the job nor an admin token"},
        409: {"description": "the job already ended"},
    },
)
def cancel_job(job_id: str, jobs: Jobs, who: Caller) -> CancelResponse:
    """Only the token that created the job, or an admin token, may cancel it."""
    rec = _get_job(jobs, job_id)
    if not who.admin and rec.owner != who.id:
        raise HTTPException(
            403, detail="only the token that created this job, or an admin token, may cancel it"
        )
    try:
        rec = jobs.request_cancel(job_id)
    except JobConflict as exc:
        raise HTTPException(409, detail=str(exc)) from None
    except JobNotFound as exc:
        raise HTTPException(404, detail=str(exc)) from None
    return CancelResponse(job_id=rec.id, status=rec.status, cancel_requested=True)


@router.get(
    "/{job_id}/preview.png",
    dependencies=[Read],
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
    dependencies=[Read],
    responses={
        **NOT_FOUND,
        200: {
            "content": {"text/event-stream": {}},
            "description": "job, status, progress, part and cancel events",
        },
        429: {"description": "this token has GDGAN_SSE_MAX_STREAMS streams open (Retry-After)"},
    },
)
async def job_events(
    job_id: str,
    request: Request,
    jobs: Jobs,
    settings: SettingsD,
    who: Caller,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Server-sent events until the job ends: first a ``job`` event with the whole record (unless
    resuming with Last-Event-ID), then each event as it is published.

    Bounded: a token has at most GDGAN_SSE_MAX_STREAMS open (429 beyond), a stream closes after
    GDGAN_SSE_MAX_DURATION_S (resume with Last-Event-ID), and all of this gateway's streams share
    GDGAN_SSE_REDIS_CONNECTIONS Redis connections, each held only for one XREAD wait."""
    rec0 = await asyncio.to_thread(_get_job, jobs, job_id)
    slot = StreamSlot(jobs.r, who.id, settings)
    if who.metered:
        await asyncio.to_thread(slot.acquire)
    key = events_key(job_id)
    client = sse_redis(request.app, settings)
    root = import_root(settings)
    deadline = time.monotonic() + settings.sse_max_duration_s

    def record(rec: JobRecord) -> str:
        return public_record(rec, settings, root).model_dump_json()

    async def stream() -> AsyncIterator[dict[str, Any]]:
        try:
            last = last_event_id if last_event_id and _is_stream_id(last_event_id) else None
            if last is None:
                newest = await client.xrevrange(key, "+", "-", count=1)
                last = newest[0][0] if newest else "0"
                rec = await asyncio.to_thread(jobs.get, job_id) if rec0.status not in TERMINAL else rec0
                yield {"event": "job", "id": last, "data": record(rec)}
                if rec.status in TERMINAL:
                    return
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    return
                resp = await client.xread({key: last}, block=BLOCK_MS, count=100)
                for _s, items in resp or []:
                    for eid, fields in items:
                        last = eid
                        event = fields.get("event", "message")
                        data = public_event(fields.get("data", "{}"), settings, root)
                        yield {"event": event, "id": eid, "data": data}
                        if event == "status" and json.loads(data).get("status") in TERMINAL:
                            return
                if not resp:
                    rec = await asyncio.to_thread(jobs.get, job_id)
                    if rec.status in TERMINAL:
                        yield {"event": "job", "id": last, "data": record(rec)}
                        return
        finally:
            # not awaited: inside a cancelled scope (the client left) an await would be cancelled too
            slot.release()

    # released twice on purpose: a client that leaves before the first event never starts stream()
    return EventSourceResponse(stream(), ping=15, background=BackgroundTask(slot.release))


def sse_redis(app: FastAPI, settings: Settings) -> aredis.Redis:
    """The gateway's one async Redis client for event streams: a blocking pool of
    GDGAN_SSE_REDIS_CONNECTIONS, so a thousand open streams cannot open a thousand connections
    (a stream waits for a free one between its XREAD waits). Closed by the app's lifespan."""
    client = getattr(app.state, "sse_redis", None)
    if client is None:
        pool = aredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.sse_redis_connections,
            timeout=BLOCK_MS / 1000 + 30,
            decode_responses=True,
            client_name=SSE_CLIENT_NAME,
            socket_connect_timeout=3,
            socket_timeout=BLOCK_MS / 1000 + 10,
        )
        client = app.state.sse_redis = aredis.Redis(connection_pool=pool)
    return client


def _is_stream_id(value: str) -> bool:
    a, _, b = value.partition("-")
    return a.isdigit() and (b == "" or b.isdigit())
