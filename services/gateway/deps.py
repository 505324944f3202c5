"""Every dependency the gateway's routes use, typed, in one place.

Routes declare ``jobs: Jobs``, ``store: Store`` ... and never construct clients themselves, so a
test (or another deployment) swaps a backend by overriding one function here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

import redis.asyncio as aredis
from fastapi import Depends, HTTPException, Request
from gdgan.jobs.records import JobStore, new_job_id
from gdgan.schemas import JobRecord
from gdgan.settings import Settings, get_settings
from gdgan.store import ArtifactStore, open_store, validate_id
from gdgan.store.base import ID_RE

from services.common.auth import Principal, principal_dep, require
from services.gateway.quotas import admit_job


async def settings_dep() -> Settings:
    """Async because it does no I/O (a cached object): a sync dependency costs a threadpool hop."""
    return get_settings()


@lru_cache(maxsize=1)
def _store() -> ArtifactStore:
    return open_store(service=True)


def store_dep() -> ArtifactStore:
    return _store()


@lru_cache(maxsize=1)
def _jobs() -> JobStore:
    s = get_settings()
    return JobStore.from_url(
        s.redis_url,
        s.job_ttl_s,
        s.job_lease_s,
        timeout_s=3.0,
        events_maxlen=s.job_events_maxlen,
        events_ttl_s=s.job_events_ttl_s,
    )


def jobs_dep() -> JobStore:
    return _jobs()


REDIS_TIMEOUT_S = 3.0  # a Redis that does not answer a GET in this long is down: 503


def async_redis(s: Settings) -> aredis.Redis:
    """The gateway's shared asyncio Redis pool, opened once per process (``lifespan``): the job-status
    route runs on the event loop over pooled connections, not on a threadpool thread each."""
    return aredis.Redis.from_url(
        s.redis_url, decode_responses=True, socket_connect_timeout=3, socket_timeout=REDIS_TIMEOUT_S
    )


async def aredis_dep(request: Request) -> aredis.Redis:
    """Async on purpose: a sync dependency would cost every request a threadpool hop."""
    client: aredis.Redis | None = getattr(request.app.state, "aredis", None)
    if client is None:  # an app served without its lifespan
        client = request.app.state.aredis = async_redis(get_settings())
    return client


def checked_id(value: str, what: str) -> str:
    """404 for anything that is not a well-formed id: no path tricks reach the store."""
    if not ID_RE.fullmatch(value or ""):
        raise HTTPException(status_code=404, detail=f"no {what} {value[:100]!r}")
    return validate_id(value)


SettingsD = Annotated[Settings, Depends(settings_dep)]
Store = Annotated[ArtifactStore, Depends(store_dep)]
Jobs = Annotated[JobStore, Depends(jobs_dep)]
ARedis = Annotated[aredis.Redis, Depends(aredis_dep)]
# Route scopes (services.common.auth): reading needs 'read'; creating datasets, training and
# evaluation jobs 'train'; generating images (now or as a job) 'generate'; admin holds them all.
Read = require("read")
Train = require("train")
Generate = require("generate")
Admin = require("admin")
Authed = Depends(principal_dep)  # a router whose routes each name their scope
Caller = Annotated[Principal, Depends(principal_dep)]  # the route's caller (quotas, job owner)


def create_job(jobs: JobStore, who: Principal, job_type: str, params: dict, task: str) -> JobRecord:
    """Admit the job against the caller's quotas (429 when over), record its owner, enqueue it."""
    job_id = new_job_id(job_type)
    if who.metered:
        admit_job(jobs, who.id, job_id, get_settings())
    rec = jobs.create(job_type, params, job_id=job_id, owner=who.id if who.metered else None)
    enqueue(jobs, rec.id, task)
    return rec


def enqueue(jobs: JobStore, job_id: str, task: str) -> None:
    """Publish the job's task; if the broker refuses, the record says so instead of staying queued."""
    from gdgan.jobs.celery_app import send

    try:
        send(task, job_id)
    except Exception as exc:
        jobs.set_status(job_id, "failed", allowed_from={"queued"}, error=f"could not enqueue the job: {exc}")
        raise
