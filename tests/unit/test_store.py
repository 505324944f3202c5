"""One artifact-store suite, run against both backends: a local folder and a real S3 server."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from gdgan.store import (
    ArtifactNotFound,
    ArtifactStore,
    IntegrityError,
    InvalidArtifactId,
    StoreUnavailable,
    new_id,
    open_store,
    validate_id,
)
from gdgan.store.base import MANIFEST


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    return request.getfixturevalue("local_store" if request.param == "local" else "s3_store")


def _raw_put(store: ArtifactStore, artifact_id: str, name: str, data: bytes) -> None:
    """Write behind the store's back (as an attacker or a bit-flip would)."""
    store._put_bytes(store._key(artifact_id, name), data)


def test_put_commit_get_list_delete(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "payload.bin"
    src.write_bytes(b"\x00\x01" * 1000)
    with store.writer("dataset") as w:
        w.put_bytes("a.bin", b"hello")
        w.put_json("cfg.json", {"x": 1})
        w.put_file("payload.bin", src)
        m = w.commit(config={"size": 64}, parents=[], meta={"note": "t"})
    assert m.kind == "dataset"
    assert set(m.files) == {"a.bin", "cfg.json", "payload.bin"}
    assert m.files["payload.bin"].size == 2000
    assert store.exists(m.id)
    assert store.get_bytes(m.id, "a.bin") == b"hello"
    assert store.get_json(m.id, "cfg.json") == {"x": 1}
    assert store.fetch(m.id, "payload.bin").read_bytes() == src.read_bytes()
    got = store.manifest(m.id)
    assert got.config == {"size": 64} and got.meta == {"note": "t"}
    assert [x.id for x in store.list()] == [m.id]
    assert [x.id for x in store.list("dataset")] == [m.id]
    assert store.list("gdgan") == []
    store.delete(m.id)
    assert not store.exists(m.id)
    assert store.list() == []
    with pytest.raises(ArtifactNotFound, match=m.id):
        store.manifest(m.id)
    with pytest.raises(ArtifactNotFound):
        store.delete(m.id)


def test_list_is_oldest_first_and_latest(store: ArtifactStore) -> None:
    ids = []
    for i in range(3):
        with store.writer("gdgan") as w:
            w.put_bytes("w.bin", bytes([i]))
            ids.append(w.commit(parents=ids[-1:]).id)
        time.sleep(0.002)
    assert [m.id for m in store.list("gdgan")] == ids
    latest = store.latest("gdgan")
    assert latest is not None and latest.id == ids[-1] and latest.parents == [ids[1]]
    assert store.latest("dataset") is None


def test_failed_writer_leaves_nothing_visible(store: ArtifactStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.writer("dataset") as w:
        w.put_bytes("a.bin", b"partial")
        aid = w.id
        raise RuntimeError("boom")
    assert not store.exists(aid)
    assert store.list() == []
    assert list(store._list_keys(aid)) == []  # payload cleaned up, not only hidden


def test_manifest_is_written_last(store: ArtifactStore) -> None:
    """Before commit a reader sees nothing, even though payload files exist."""
    w = store.writer("dataset")
    w.put_bytes("a.bin", b"data")
    assert not store.exists(w.id)
    assert store.list() == []
    with pytest.raises(ArtifactNotFound):
        store.get_bytes(w.id, "a.bin")
    w.commit()
    assert store.exists(w.id)


def test_tampered_file_is_detected(store: ArtifactStore) -> None:
    with store.writer("dataset") as w:
        w.put_bytes("a.bin", b"original")
        m = w.commit()
    _raw_put(store, m.id, "a.bin", b"tampered")
    with pytest.raises(IntegrityError, match="sha256"):
        store.get_bytes(m.id, "a.bin")
    with pytest.raises(IntegrityError, match="sha256"):
        store.fetch(m.id, "a.bin")


def test_fetch_cache_is_not_trusted_blindly(store: ArtifactStore) -> None:
    """A verified fetch, then tampering in the store: a fresh fetch of new content fails."""
    with store.writer("dataset") as w:
        w.put_bytes("a.bin", b"original")
        m = w.commit()
    assert store.fetch(m.id, "a.bin").read_bytes() == b"original"
    _raw_put(store, m.id, "a.bin", b"evil")
    shutil.rmtree(store.cache_dir / m.id, ignore_errors=True)  # S3: force a fresh download
    with pytest.raises(IntegrityError):
        store.fetch(m.id, "a.bin")


@pytest.mark.parametrize("bad", ["..", "../etc", "a/b", "/abs", "A" * 5, "x" * 97, "", "a..b/c", "a b"])
def test_invalid_ids_rejected(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(InvalidArtifactId):
        store.manifest(bad)
    with pytest.raises(InvalidArtifactId):
        store.writer("dataset", artifact_id=bad)
    with pytest.raises(InvalidArtifactId):
        store.delete(bad)


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", MANIFEST, ".hidden", "x" * 200])
def test_invalid_file_names_rejected(store: ArtifactStore, bad: str) -> None:
    with store.writer("dataset") as w, pytest.raises(InvalidArtifactId):
        w.put_bytes(bad, b"x")


def test_ids() -> None:
    aid = new_id("dataset")
    assert validate_id(aid) == aid and aid.startswith("dataset-")
    assert new_id("dataset") != aid
    with pytest.raises(InvalidArtifactId):
        new_id("Bad/Kind")
    assert validate_id("x" * 96)


def test_missing_file_in_artifact(store: ArtifactStore) -> None:
    with store.writer("dataset") as w:
        w.put_bytes("a.bin", b"x")
        m = w.commit()
    with pytest.raises(ArtifactNotFound, match=r"b\.bin"):
        store.get_bytes(m.id, "b.bin")


def test_ping(store: ArtifactStore) -> None:
    store.ping()


def test_manifest_is_json_with_hashes(store: ArtifactStore) -> None:
    import hashlib

    with store.writer("dataset") as w:
        w.put_bytes("a.bin", b"abc")
        m = w.commit()
    raw = json.loads(store._get_bytes(store._key(m.id, MANIFEST)))
    assert raw["files"]["a.bin"]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert raw["files"]["a.bin"]["size"] == 3


# --- S3 failure modes ------------------------------------------------------------------------------
def test_s3_unreachable_endpoint_is_quick_and_named(tmp_path: Path) -> None:
    from gdgan.localstack.servers import free_port
    from gdgan.store.s3 import S3Store

    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        S3Store("bucket", f"127.0.0.1:{port}", "k", "s", cache_dir=tmp_path)
    assert time.monotonic() - t0 < 10


def test_s3_bad_credentials_named(s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gdgan.store.s3 import S3Store

    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match=s3_server.address) as exc:
        S3Store("bucket", s3_server.endpoint, s3_server.access_key, "wrong-secret", cache_dir=tmp_path)
    assert "credentials" in str(exc.value)
    assert time.monotonic() - t0 < 10


def test_open_store_from_settings(s3_env: dict[str, str], s3_server) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    assert store.url.startswith(s3_env["GDGAN_STORE_URL"])
    with store.writer("dataset") as w:
        w.put_bytes("a.bin", b"x")
        m = w.commit()
    assert [x.id for x in open_store().list()] == [m.id]


def test_open_store_default_is_local_under_data_dir(tmp_path: Path) -> None:
    from gdgan.settings import get_settings

    store = open_store()
    assert store.url.startswith(Path(get_settings().data_dir).resolve().as_uri())


def test_open_store_s3_without_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from gdgan.settings import SettingsError, get_settings, load_settings

    with pytest.raises(SettingsError, match="GDGAN_S3_ENDPOINT"):
        load_settings({"GDGAN_STORE_URL": "s3://bucket"})
    monkeypatch.setenv("GDGAN_STORE_URL", "s3://bucket")
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="GDGAN_S3_ENDPOINT"):
        open_store()


def test_s3_prefixes_are_separate_namespaces(s3_server, s3_bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gdgan.store.s3 import S3Store

    def make(prefix: str) -> S3Store:
        return S3Store(s3_bucket, s3_server.endpoint, s3_server.access_key, s3_server.secret_key,
                       prefix=prefix, cache_dir=tmp_path / prefix)  # fmt: skip

    a, b = make("team-a"), make("team-b")
    with a.writer("dataset") as w:
        w.put_bytes("x.bin", b"a")
        m = w.commit()
    assert [x.id for x in a.list()] == [m.id]
    assert b.list() == [] and not b.exists(m.id)
    assert a.url == f"s3://{s3_bucket}/team-a/"


def test_large_file_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    """12 MB: above the S3 client's 5 MiB part size, so the multipart path is exercised."""
    import os

    src = tmp_path / "big.npy"
    src.write_bytes(os.urandom(12 * 1024 * 1024))
    with store.writer("dataset") as w:
        w.put_file("big.npy", src)
        m = w.commit()
    assert m.files["big.npy"].size == src.stat().st_size
    assert store.fetch(m.id, "big.npy").read_bytes() == src.read_bytes()
