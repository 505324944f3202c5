"""The artifact store: one interface over a local folder or an S3 bucket.

An artifact is a folder of payload files plus ``manifest.json``. The manifest is written last
(after every payload file and its sha256), so a reader that sees a manifest sees a complete
artifact, and a crash half-way leaves only invisible orphans. Readers verify hashes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import secrets
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from gdgan import __version__

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,95}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KIND_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MANIFEST = "manifest.json"
CHUNK = 1 << 20
log = logging.getLogger("gdgan.store")


class StoreError(RuntimeError):
    """Base class of store errors; messages are meant for users."""


class ArtifactNotFound(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would add quotes
        return str(self.args[0]) if self.args else "artifact not found"


class InvalidArtifactId(StoreError, ValueError):
    pass


class IntegrityError(StoreError):
    """A payload file does not match the sha256 recorded in its manifest."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or refuses our credentials."""


def validate_id(artifact_id: str) -> str:
    if not isinstance(artifact_id, str) or not ID_RE.fullmatch(artifact_id):
        raise InvalidArtifactId(
            f"invalid artifact id {str(artifact_id)[:100]!r}: lower-case letters, digits, '-' and '_',"
            " at most 96 characters"
        )
    return artifact_id


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidArtifactId(f"invalid artifact file name {str(name)[:100]!r}")
    return name


def new_id(kind: str) -> str:
    """'<kind>-<utc date>-<random>' — sortable by day, unguessable, safe as a path segment."""
    if not KIND_RE.fullmatch(kind):
        raise InvalidArtifactId(f"invalid artifact kind {kind!r}")
    return f"{kind}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(5)}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class FileEntry(BaseModel):
    size: int
    sha256: str


class Manifest(BaseModel):
    """What an artifact is, where it came from and what it holds."""

    id: str
    kind: str
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    config: dict[str, Any] = Field(default_factory=dict)
    parents: list[str] = Field(default_factory=list)
    files: dict[str, FileEntry] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    code_version: str = __version__

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())


class ArtifactWriter:
    """Collects payload files of one artifact; ``commit`` writes the manifest last.

    Used as a context manager: leaving the block by an exception deletes what was written, unless
    the exception is the store itself being unreachable: each delete would wait out the retry budget
    again, and the files, having no manifest, are invisible anyway (``gdgan store gc`` removes them
    after ``GDGAN_GC_GRACE_S``).
    """

    def __init__(self, store: ArtifactStore, kind: str, artifact_id: str | None = None) -> None:
        self.store = store
        self.kind = kind
        self.id = validate_id(new_id(kind) if artifact_id is None else artifact_id)
        self.files: dict[str, FileEntry] = {}
        self.committed: Manifest | None = None

    def put_bytes(self, name: str, data: bytes) -> None:
        validate_name(name)
        if name == MANIFEST:
            raise InvalidArtifactId("manifest.json is reserved")
        self.store._put_bytes(self.store._key(self.id, name), data)
        self.files[name] = FileEntry(size=len(data), sha256=hashlib.sha256(data).hexdigest())

    def put_json(self, name: str, obj: Any) -> None:
        self.put_bytes(name, json.dumps(obj, indent=1, sort_keys=True).encode())

    def put_file(self, name: str, path: Path) -> None:
        validate_name(name)
        digest = sha256_file(path)
        self.store._put_file(self.store._key(self.id, name), Path(path))
        self.files[name] = FileEntry(size=Path(path).stat().st_size, sha256=digest)

    def commit(
        self,
        config: dict[str, Any] | None = None,
        parents: list[str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Manifest:
        for p in parents or []:
            validate_id(p)
        if self.store.fence is not None:
            self.store.fence()  # raises when the caller may no longer publish (e.g. a lost job lease)
        manifest = Manifest(
            id=self.id,
            kind=self.kind,
            config=config or {},
            parents=list(parents or []),
            files=dict(self.files),
            meta=meta or {},
        )
        self.store._put_bytes(self.store._key(self.id, MANIFEST), manifest.model_dump_json(indent=1).encode())
        self.committed = manifest
        return manifest

    def abort(self) -> None:
        for name in list(self.files):
            self.store._delete_key(self.store._key(self.id, name))
        self.files.clear()

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None or self.committed is not None:
            return
        if isinstance(exc, StoreUnavailable):
            log.warning("store unreachable: %d partial file(s) of %s left for gc", len(self.files), self.id)
            return
        self.abort()


class ArtifactStore(ABC):
    """Backend-independent artifact logic; backends implement the key-value primitives."""

    url: str

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "gdgan-cache"
        # Called before every commit; raising stops the commit, and the writer's context manager
        # removes the payload files. A job worker sets it to its lease check (gdgan.jobs.lease).
        self.fence: Callable[[], None] | None = None

    # -- primitives (backend) ------------------------------------------------------------------
    @abstractmethod
    def _put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _put_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def _get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def _download(self, key: str, dest: Path) -> None: ...

    @abstractmethod
    def _exists(self, key: str) -> bool: ...

    @abstractmethod
    def _list_ids(self) -> Iterator[str]: ...

    @abstractmethod
    def _list_keys(self, artifact_id: str) -> Iterator[str]: ...

    @abstractmethod
    def _delete_key(self, key: str) -> None: ...

    @abstractmethod
    def _key_stats(self, artifact_id: str) -> Iterator[tuple[str, int, datetime]]:
        """(key, size, last modified) of every stored file of the artifact: garbage collection
        needs the age of a partial upload, which has no manifest to say when it was made."""

    def _local_path(self, key: str) -> Path | None:
        """A path readers may open directly (local backend), else None."""
        return None

    @abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable when the backend cannot be used."""

    # -- public API ----------------------------------------------------------------------------
    @staticmethod
    def _key(artifact_id: str, name: str) -> str:
        return f"artifacts/{artifact_id}/{name}"

    def writer(self, kind: str, artifact_id: str | None = None) -> ArtifactWriter:
        return ArtifactWriter(self, kind, artifact_id)

    def exists(self, artifact_id: str) -> bool:
        return self._exists(self._key(validate_id(artifact_id), MANIFEST))

    def manifest(self, artifact_id: str) -> Manifest:
        validate_id(artifact_id)
        try:
            raw = self._get_bytes(self._key(artifact_id, MANIFEST))
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact {artifact_id!r} in {self.url}") from None
        return Manifest.model_validate_json(raw)

    def _entry(self, artifact_id: str, name: str) -> FileEntry:
        validate_name(name)
        m = self.manifest(artifact_id)
        if name not in m.files:
            raise ArtifactNotFound(f"artifact {artifact_id!r} has no file {name!r}")
        return m.files[name]

    def get_bytes(self, artifact_id: str, name: str) -> bytes:
        entry = self._entry(artifact_id, name)
        data = self._get_bytes(self._key(artifact_id, name))
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(f"{artifact_id}/{name}: sha256 mismatch (corrupt or tampered)")
        return data

    def get_json(self, artifact_id: str, name: str) -> Any:
        return json.loads(self.get_bytes(artifact_id, name))

    def open_bytes(self, artifact_id: str, name: str) -> io.BytesIO:
        return io.BytesIO(self.get_bytes(artifact_id, name))

    def fetch(self, artifact_id: str, name: str) -> Path:
        """A verified local path to a payload file (large files: memory-map it).

        Local backend: the stored file itself. S3: a cached download, verified once.
        """
        entry = self._entry(artifact_id, name)
        key = self._key(artifact_id, name)
        direct = self._local_path(key)
        if direct is not None:
            if sha256_file(direct) != entry.sha256:
                raise IntegrityError(f"{artifact_id}/{name}: sha256 mismatch (corrupt or tampered)")
            return direct
        dest = self.cache_dir / artifact_id / name
        marker = dest.with_name(dest.name + ".sha256")
        if dest.exists() and marker.exists() and marker.read_text() == entry.sha256:
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + f".part{secrets.token_hex(4)}")
        self._download(key, tmp)
        if sha256_file(tmp) != entry.sha256:
            tmp.unlink(missing_ok=True)
            raise IntegrityError(f"{artifact_id}/{name}: sha256 mismatch (corrupt or tampered)")
        tmp.replace(dest)
        marker.write_text(entry.sha256)
        return dest

    def list(self, kind: str | None = None) -> list[Manifest]:
        """Committed artifacts (oldest first); half-written ones have no manifest and are skipped."""
        out = []
        for aid in self._list_ids():
            if not ID_RE.fullmatch(aid):
                continue
            try:
                m = self.manifest(aid)
            except ArtifactNotFound:
                continue
            if kind is None or m.kind == kind:
                out.append(m)
        out.sort(key=lambda m: (m.created, m.id))
        return out

    def latest(self, kind: str) -> Manifest | None:
        items = self.list(kind)
        return items[-1] if items else None

    def delete(self, artifact_id: str) -> None:
        """Manifest first, so the artifact disappears atomically for readers."""
        validate_id(artifact_id)
        if not self.exists(artifact_id):
            raise ArtifactNotFound(f"no artifact {artifact_id!r} in {self.url}")
        self._delete_key(self._key(artifact_id, MANIFEST))
        for key in list(self._list_keys(artifact_id)):
            self._delete_key(key)
        shutil.rmtree(self.cache_dir / artifact_id, ignore_errors=True)
