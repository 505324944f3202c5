"""Artifact store: ``open_store()`` returns the backend named by ``GDGAN_STORE_URL``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from gdgan.settings import Settings, get_settings
from gdgan.store.base import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactWriter,
    IntegrityError,
    InvalidArtifactId,
    Manifest,
    StoreError,
    StoreUnavailable,
    new_id,
    validate_id,
)

__all__ = [
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactWriter",
    "IntegrityError",
    "InvalidArtifactId",
    "Manifest",
    "StoreError",
    "StoreUnavailable",
    "new_id",
    "open_store",
    "validate_id",
]


def open_store(
    url: str | None = None, settings: Settings | None = None, service: bool = False
) -> ArtifactStore:
    """Open the store at ``url`` (default: the settings' store URL).

    An S3 store waits out an endpoint that restarts for ``GDGAN_S3_RETRY_BUDGET_S`` per call;
    ``service`` (the gateway, the generator) uses ``GDGAN_S3_SERVICE_RETRY_BUDGET_S`` instead, so an
    HTTP request answers 503 + Retry-After rather than holding its connection through the restart.
    """
    s = settings or get_settings()
    url = url or s.resolved_store_url
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from gdgan.store.local import LocalStore

        return LocalStore(Path(unquote(parsed.path)), cache_dir=s.cache_dir)
    if parsed.scheme == "s3":
        from gdgan.store.s3 import RetryPolicy, S3Store

        if not s.s3_endpoint:
            raise StoreUnavailable("GDGAN_S3_ENDPOINT must be set for an s3:// store")
        return S3Store(
            bucket=parsed.netloc,
            prefix=parsed.path,
            endpoint=s.s3_endpoint,
            access_key=s.s3_access_key.get_secret_value(),
            secret_key=s.s3_secret_key.get_secret_value(),
            secure=s.s3_secure,
            region=s.s3_region or None,
            cache_dir=s.cache_dir,
            retry=RetryPolicy(
                budget_s=s.s3_service_retry_budget_s if service else s.s3_retry_budget_s,
                backoff_s=s.s3_retry_backoff_s,
                backoff_max_s=s.s3_retry_backoff_max_s,
                setting="GDGAN_S3_SERVICE_RETRY_BUDGET_S" if service else "GDGAN_S3_RETRY_BUDGET_S",
            ),
        )
    raise StoreError(f"unsupported store URL {url!r}: use file:///path or s3://bucket")
