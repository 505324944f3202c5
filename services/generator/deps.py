"""The generator's typed dependencies: settings, store, model cache, batcher, auth (read: list the
models; generate: images)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from gdgan.settings import Settings, get_settings
from gdgan.store import ArtifactStore

from services.common.auth import principal_dep, require
from services.generator.batcher import Batcher
from services.generator.models import ModelCache


# Async although none awaits: each only reads a cached object, and FastAPI would run a sync
# dependency on a threadpool thread, a hop per request that costs more than the read.
async def settings_dep() -> Settings:
    return get_settings()


async def store_dep(request: Request) -> ArtifactStore:
    return request.app.state.store


async def cache_dep(request: Request) -> ModelCache:
    return request.app.state.cache


async def batcher_dep(request: Request) -> Batcher:
    return request.app.state.batcher


SettingsD = Annotated[Settings, Depends(settings_dep)]
Store = Annotated[ArtifactStore, Depends(store_dep)]
Cache = Annotated[ModelCache, Depends(cache_dep)]
BatcherD = Annotated[Batcher, Depends(batcher_dep)]
Authed = Depends(principal_dep)
Read = require("read")
Generate = require("generate")
