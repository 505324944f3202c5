"""Artifact store on any S3 API (MinIO, SeaweedFS, AWS) through the minio SDK.

Connection failures and refused credentials become ``StoreUnavailable`` naming the endpoint,
with few, short retries: a service should report a dead store in seconds, not minutes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from gdgan.store.base import ArtifactStore, StoreUnavailable

T = TypeVar("T")
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound"}
_AUTH = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}


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
    ) -> None:
        super().__init__(cache_dir)
        parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        self.endpoint = parsed.netloc
        self.secure = parsed.scheme == "https" if secure is None else secure
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3.0, read=120.0),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
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
        try:
            return fn()
        except S3Error as exc:
            if exc.code in _MISSING:
                raise FileNotFoundError(exc.object_name or "") from None
            if exc.code in _AUTH:
                raise StoreUnavailable(f"{self._where()} refused the credentials: {exc.code}") from None
            raise StoreUnavailable(f"{self._where()} error: {exc.code}: {exc.message}") from None
        except (urllib3.exceptions.HTTPError, MinioException, ConnectionError, TimeoutError) as exc:
            # urllib3 wraps socket failures (MaxRetryError, ProtocolError...); minio raises
            # ServerError / InvalidResponseError for a proxy or server that answers garbage. Other
            # OSErrors (a full local disk under fget_object) are not the endpoint's fault: they
            # propagate as themselves.
            raise StoreUnavailable(f"{self._where()} is unreachable: {type(exc).__name__}") from None

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
