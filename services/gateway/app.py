"""The gateway: the public REST API and the web client. Wiring only; logic is in gdgan.*."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from gdgan import __version__
from gdgan.settings import get_settings

from services.common.auth import require
from services.common.headers import SecurityHeaders
from services.common.http import BodyLimitMiddleware, Metrics, install_error_handlers
from services.gateway import openapi_links
from services.gateway.deps import async_redis
from services.gateway.quotas import QuotaExceeded
from services.gateway.routers import datasets, generate, health, jobs, models

WEB_DIR = Path(__file__).resolve().parent / "web"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The reaper of last resort: redelivers (then fails) the tasks of dead workers even when no
    worker is left to do it (gdgan.jobs.heartbeat). Opens the job-status route's shared async Redis
    pool, and closes it and the event streams' shared pool."""
    from gdgan.jobs.heartbeat import start_reaper

    app.state.aredis = async_redis(get_settings())
    done = start_reaper()
    try:
        yield
    finally:
        done.set()
        await app.state.aredis.aclose()
        client = getattr(app.state, "sse_redis", None)
        if client is not None:
            await client.aclose()


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        lifespan=lifespan,
        title="GDGAN gateway",
        version=__version__,
        description=(
            "Datasets, training/evaluation/generation jobs with live progress (SSE), models, reports "
            "and image generation. When tokens are configured (GDGAN_API_TOKENS, GDGAN_API_TOKEN) "
            "every /v1 route needs `Authorization: Bearer <token>` and a scope: read (GETs, event "
            "streams), generate, train (datasets, training, evaluation) or admin. Per-token quotas "
            "answer 429 with Retry-After."
        ),
    )
    install_error_handlers(app)

    @app.exception_handler(QuotaExceeded)
    async def _quota(_: Request, exc: QuotaExceeded) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_s)}
        )

    Metrics("gateway").install(app, guard=None if settings.metrics_public else [require("admin")])
    for r in (health.router, datasets.router, jobs.router, models.router, generate.router):
        app.include_router(r)
    openapi_links.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: every answer, a 413 or a 500 included
    if WEB_DIR.is_dir():
        # mounted last: API routes win, everything else is the web client
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
