"""Artifact store on a local folder: atomic writes by rename, direct paths for memory-mapping."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from gdgan.store.base import ArtifactStore, StoreUnavailable


class LocalStore(ArtifactStore):
    def __init__(self, root: Path, cache_dir: Path | None = None) -> None:
        super().__init__(cache_dir)
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()
        try:
            (self.root / "artifacts").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create store folder {self.root}: {exc}") from None

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StoreUnavailable(f"key {key!r} escapes the store root")
        return path

    def _tmp(self, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")

    def _put_bytes(self, key: str, data: bytes) -> None:
        dest = self._path(key)
        tmp = self._tmp(dest)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)

    def _put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        tmp = self._tmp(dest)
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)

    def _get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(key) from None

    def _download(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _list_ids(self) -> Iterator[str]:
        base = self.root / "artifacts"
        if base.is_dir():
            for entry in os.scandir(base):
                if entry.is_dir():
                    yield entry.name

    def _list_keys(self, artifact_id: str) -> Iterator[str]:
        base = self.root / "artifacts" / artifact_id
        if base.is_dir():
            for p in base.iterdir():
                yield f"artifacts/{artifact_id}/{p.name}"

    def _key_stats(self, artifact_id: str) -> Iterator[tuple[str, int, datetime]]:
        for key in self._list_keys(artifact_id):
            with contextlib.suppress(FileNotFoundError):
                st = self._path(key).stat()
                yield key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)

    def _delete_key(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        parent = path.parent
        if parent != self.root / "artifacts" and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()

    def _local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def ping(self) -> None:
        if not os.access(self.root / "artifacts", os.W_OK):
            raise StoreUnavailable(f"store folder {self.root} is not writable")
