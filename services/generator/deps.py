"""The generator's typed dependencies: settings, store, model cache, batcher, auth."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from gdgan.settings import Settings, get_settings
from gdgan.store import ArtifactStore

from services.common.http import bearer, check_token
from services.generator.batcher import Batcher
from services.generator.models import ModelCache


def settings_dep() -> Settings:
    return get_settings()


def store_dep(request: Request) -> ArtifactStore:
    return request.app.state.store


def cache_dep(request: Request) -> ModelCache:
    return request.app.state.cache


def batcher_dep(request: Request) -> Batcher:
    return request.app.state.batcher


def auth_dep(
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    settings: Annotated[Settings, Depends(settings_dep)],
) -> None:
    check_token(settings.api_token.get_secret_value(), creds)


SettingsD = Annotated[Settings, Depends(settings_dep)]
Store = Annotated[ArtifactStore, Depends(store_dep)]
Cache = Annotated[ModelCache, Depends(cache_dep)]
BatcherD = Annotated[Batcher, Depends(batcher_dep)]
Auth = Depends(auth_dep)
