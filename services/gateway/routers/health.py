"""Liveness, readiness (Redis and store reachable)."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from gdgan.schemas import Health
from gdgan.store import StoreError

from services.gateway.deps import Jobs, Store

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(jobs: Jobs, store: Store) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        jobs.ping()
        checks["redis"] = "ok"
    except redis.RedisError as exc:
        checks["redis"] = f"unavailable: {exc}"
    try:
        store.ping()
        checks["store"] = "ok"
    except StoreError as exc:
        checks["store"] = f"unavailable: {exc}"
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ready" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
