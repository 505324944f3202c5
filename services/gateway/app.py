"""The gateway: the public REST API and the web client. Wiring only; logic is in gdgan.*."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from gdgan import __version__
from gdgan.settings import get_settings

from services.common.http import BodyLimitMiddleware, Metrics, install_error_handlers
from services.gateway.deps import async_redis
from services.gateway.routers import datasets, generate, health, jobs, models

WEB_DIR = Path(__file__).resolve().parent / "web"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The reaper of last resort: redelivers (then fails) the tasks of dead workers even when no
    worker is left to do it (gdgan.jobs.heartbeat). And the shared async Redis pool of the job
    status route."""
    from gdgan.jobs.heartbeat import start_reaper

    app.state.aredis = async_redis(get_settings())
    done = start_reaper()
    try:
        yield
    finally:
        done.set()
        await app.state.aredis.aclose()


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        lifespan=lifespan,
        title="GDGAN gateway",
        version=__version__,
        description=(
            "Datasets, training/evaluation/generation jobs with live progress (SSE), models, reports "
            "and image generation. When GDGAN_API_TOKEN is set every /v1 route needs "
            "`Authorization: Bearer <token>`."
        ),
    )
    install_error_handlers(app)
    Metrics("gateway").install(app)
    for r in (health.router, datasets.router, jobs.router, models.router, generate.router):
        app.include_router(r)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if WEB_DIR.is_dir():
        # mounted last: API routes win, everything else is the web client
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
