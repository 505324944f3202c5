"""Artifact store on any S3 API (MinIO, SeaweedFS, AWS) through the minio SDK.

An S3 server that restarts (refused connections, 5xx while it starts, a transfer cut off) is
waited for, within a time budget: a job that touches the store during a short restart carries on
instead of failing. The waiting is urllib3's own retry (the minio SDK's HTTP client), given a
deadline (:class:`BudgetRetry`); a response body cut off after the headers arrived, which urllib3
cannot retry, re-runs the whole call within the same deadline. Past the budget, or when the
credentials are refused, the call raises ``StoreUnavailable`` naming the endpoint and the setting.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from urllib3.exceptions import MaxRetryError

from gdgan.store.base import ArtifactStore, StoreUnavailable

T = TypeVar("T")
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound"}
_AUTH = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}
_RETRY_STATUS = (500, 502, 503, 504)  # S3 servers answer these while they start or shed load
log = logging.getLogger("gdgan.store")


@dataclass(frozen=True)
class RetryPolicy:
    """How long a store call waits for the endpoint, and which setting says so (for the error)."""

    budget_s: float = 0.0
    backoff_s: float = 0.5
    backoff_max_s: float = 5.0
    setting: str = "GDGAN_S3_RETRY_BUDGET_S"


class BudgetRetry(urllib3.Retry):
    """urllib3's retry bounded by time rather than by a count of attempts.

    A refused connection fails in microseconds, so a count says nothing about how long a restart
    may take; the deadline (``budget_s`` from the first failure) does. Every attempt is left to
    urllib3: connection errors for any method (nothing was sent), cut connections for idempotent
    ones (GET, PUT, HEAD, DELETE: every call this store makes but a multipart upload's POSTs), and
    the 5xx answers of a server still starting, honouring its Retry-After. The pause doubles from
    ``backoff`` up to ``backoff_max`` and never runs past the deadline.
    """

    def __init__(
        self,
        *args: object,
        budget_s: float = 0.0,
        started: float | None = None,
        where: str = "",
        **kw: object,
    ) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.budget_s = budget_s
        self.started = started
        self.where = where

    def new(self, **kw: object) -> BudgetRetry:
        kw.setdefault("budget_s", self.budget_s)
        kw.setdefault("started", time.monotonic() if self.started is None else self.started)
        kw.setdefault("where", self.where)
        return super().new(**kw)  # type: ignore[return-value]

    def increment(self, *args: object, **kw: object) -> BudgetRetry:
        if self.started is None and self.budget_s > 0:
            err = kw.get("error")
            why = (
                type(err).__name__
                if err is not None
                else f"HTTP {getattr(kw.get('response'), 'status', '?')}"
            )
            log.warning("%s: %s; retrying for up to %.0f s", self.where, why, self.budget_s)
        return super().increment(*args, **kw)  # type: ignore[arg-type,return-value]

    def remaining(self) -> float:
        if self.started is None:
            return self.budget_s
        return self.budget_s - (time.monotonic() - self.started)

    def is_exhausted(self) -> bool:
        return self.remaining() <= 0 or super().is_exhausted()

    def sleep(self, response: urllib3.BaseHTTPResponse | None = None) -> None:
        wait = (
            self.get_retry_after(response)
            if response is not None and self.respect_retry_after_header
            else None
        )
        wait = self.get_backoff_time() if wait is None else wait
        time.sleep(max(0.0, min(wait, self.remaining())))


def make_retry(policy: RetryPolicy, where: str) -> BudgetRetry:
    """urllib3 sleeps ``backoff_factor * 2 ** (n - 1)`` before attempt n + 1 (none before the
    second), so a factor of half the first pause gives pauses of backoff, 2 x backoff, ..."""
    return BudgetRetry(
        total=None,
        connect=None,
        read=None,
        status=None,
        other=None,
        redirect=3,
        status_forcelist=_RETRY_STATUS,
        backoff_factor=policy.backoff_s / 2,
        backoff_max=policy.backoff_max_s,
        budget_s=policy.budget_s,
        where=where,
    )


class S3Store(ArtifactStore):
    def __init__(
        self,
        bucket: str,
        endpoint: str,
        access_key: str,
        secret_key: str,
        prefix: str = "",
        secure: bool | None = None,
        region: str | None = None,
        cache_dir: Path | None = None,
        create_bucket: bool = True,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(cache_dir)
        parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        self.endpoint = parsed.netloc
        self.secure = parsed.scheme == "https" if secure is None else secure
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.retry = retry or RetryPolicy()
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3.0, read=120.0),
            retries=make_retry(self.retry, self._where()),
            maxsize=16,
        )
        self.client = Minio(
            self.endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=self.secure,
            region=region or None,
            http_client=http,
        )
        if create_bucket:
            self._call(self._ensure_bucket)

    def _where(self) -> str:
        return f"S3 endpoint {'https' if self.secure else 'http'}://{self.endpoint} (bucket {self.bucket!r})"

    def _call(self, fn: Callable[[], T]) -> T:
        deadline: float | None = None
        pause = self.retry.backoff_s
        while True:
            try:
                return fn()
            except S3Error as exc:
                if exc.code in _MISSING:
                    raise FileNotFoundError(exc.object_name or "") from None
                if exc.code in _AUTH:
                    raise StoreUnavailable(f"{self._where()} refused the credentials: {exc.code}") from None
                raise StoreUnavailable(f"{self._where()} error: {exc.code}: {exc.message}") from None
            except MaxRetryError as exc:  # urllib3 waited the whole budget already
                raise self._gave_up(exc.reason) from None
            except (urllib3.exceptions.HTTPError, MinioException, ConnectionError, TimeoutError) as exc:
                # after urllib3 handed the response over: a body cut off mid-way (ProtocolError), a
                # proxy or server answering garbage (minio's ServerError / InvalidResponseError).
                # The whole call again, within the same budget. Other OSErrors (a full local disk
                # under fget_object) are not the endpoint's fault: they propagate as themselves.
                now = time.monotonic()
                deadline = now + self.retry.budget_s if deadline is None else deadline
                if now >= deadline:
                    raise self._gave_up(exc) from None
                log.warning("%s: %s; calling again", self._where(), type(exc).__name__)
                time.sleep(min(pause, deadline - now))
                pause = min(2 * pause, self.retry.backoff_max_s)

    def _gave_up(self, cause: object) -> StoreUnavailable:
        why = type(cause).__name__ if cause is not None else "no answer"
        waited = (
            f"; gave up after {self.retry.budget_s:g} s ({self.retry.setting})" if self.retry.budget_s else ""
        )
        return StoreUnavailable(f"{self._where()} is unreachable ({why}){waited}")

    def _ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def _obj(self, key: str) -> str:
        return self.prefix + key

    def _put_bytes(self, key: str, data: bytes) -> None:
        self._call(lambda: self.client.put_object(self.bucket, self._obj(key), io.BytesIO(data), len(data)))

    def _put_file(self, key: str, path: Path) -> None:
        self._call(lambda: self.client.fput_object(self.bucket, self._obj(key), str(path)))

    def _get_bytes(self, key: str) -> bytes:
        def get() -> bytes:
            resp = self.client.get_object(self.bucket, self._obj(key))
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()

        return self._call(get)

    def _download(self, key: str, dest: Path) -> None:
        self._call(lambda: self.client.fget_object(self.bucket, self._obj(key), str(dest)))

    def _exists(self, key: str) -> bool:
        try:
            self._call(lambda: self.client.stat_object(self.bucket, self._obj(key)))
            return True
        except FileNotFoundError:
            return False

    def _list_ids(self) -> Iterator[str]:
        base = self._obj("artifacts/")
        objs = self._call(lambda: list(self.client.list_objects(self.bucket, prefix=base)))
        for o in objs:
            if o.is_dir:
                yield o.object_name[len(base) :].strip("/")

    def _list_keys(self, artifact_id: str) -> Iterator[str]:
        base = self._obj(f"artifacts/{artifact_id}/")
        objs = self._call(lambda: list(self.client.list_objects(self.bucket, prefix=base, recursive=True)))
        for o in objs:
            yield o.object_name[len(self.prefix) :]

    def _key_stats(self, artifact_id: str) -> Iterator[tuple[str, int, datetime]]:
        base = self._obj(f"artifacts/{artifact_id}/")
        objs = self._call(lambda: list(self.client.list_objects(self.bucket, prefix=base, recursive=True)))
        for o in objs:
            when = o.last_modified or datetime.now(UTC)
            yield o.object_name[len(self.prefix) :], int(o.size or 0), when

    def _delete_key(self, key: str) -> None:
        self._call(lambda: self.client.remove_object(self.bucket, self._obj(key)))

    def ping(self) -> None:
        if not self._call(lambda: self.client.bucket_exists(self.bucket)):
            raise StoreUnavailable(f"{self._where()}: bucket does not exist")
