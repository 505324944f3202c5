"""Shared fixtures: isolated settings, real local Redis and S3 servers, stores, the NIH sample.

Why real servers: the store and job code must be tested against the protocols they speak in
production (S3, Redis), not against mocks. The servers start once per test session on free
loopback ports (SeaweedFS ~1 s, valkey ~0.2 s) and each test gets a fresh bucket / database.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from gdgan.localstack.servers import RedisServer, SeaweedS3Server
from gdgan.settings import ENV_PREFIX, get_settings
from gdgan.store.local import LocalStore
from sampledata import nih_sample_dir


@pytest.fixture
def nih_sample() -> Path:
    return nih_sample_dir()


# --- settings isolation ------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolated_settings(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test reads the developer's GDGAN_* environment or writes under their home folder."""
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key, raising=False)
    base = tmp_path_factory.mktemp("gdgan-home")
    monkeypatch.setenv("GDGAN_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("GDGAN_CACHE_DIR", str(base / "cache"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# --- stores ------------------------------------------------------------------------------------
@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    """An empty artifact store on a temporary folder."""
    return LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")


# --- Redis -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's Redis-protocol server process (valkey from the wheel or redis-server)."""
    server = RedisServer(dir=tmp_path_factory.mktemp("redis"), die_with_parent=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(redis_server_proc: RedisServer) -> str:
    """URL of the session's Redis server, e.g. ``redis://127.0.0.1:PORT/0``."""
    return redis_server_proc.url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis URL with an empty database (FLUSHALL before the test)."""
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server


# --- S3 (SeaweedFS) ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    """A real S3 server (SeaweedFS ``weed mini``). Attributes: ``endpoint`` (http://host:port),
    ``address`` (host:port), ``access_key``, ``secret_key``; ``env(bucket)`` gives GDGAN_* vars."""
    server = SeaweedS3Server(
        dir=tmp_path_factory.mktemp("seaweedfs"),
        access_key="gdgan-test",
        secret_key="gdgan-test-secret-" + secrets.token_hex(4),
        die_with_parent=True,
    )
    server.start(timeout=60)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: SeaweedS3Server) -> str:
    """A fresh, empty bucket name on the session's S3 server (created)."""
    return s3_server.make_bucket(f"t-{secrets.token_hex(6)}")


@pytest.fixture
def s3_store(s3_server: SeaweedS3Server, s3_bucket: str, tmp_path: Path):  # -> S3Store
    """An S3Store on a fresh bucket of the session's S3 server."""
    from gdgan.store.s3 import S3Store

    return S3Store(
        bucket=s3_bucket,
        endpoint=s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        cache_dir=tmp_path / "s3-cache",
    )


@pytest.fixture
def s3_env(s3_server: SeaweedS3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point GDGAN settings (this process) at a fresh bucket; returns the variables for subprocesses."""
    env = s3_server.env(s3_bucket)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    return env


@pytest.fixture
def task_env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # -> (JobStore, ArtifactStore)
    """This process set up as a worker running task bodies inline: real Redis, a file store in
    tmp_path, one CPU thread; the job store is rebuilt from these settings."""
    from gdgan.jobs import tasks
    from gdgan.store import open_store

    for k, v in {
        "GDGAN_REDIS_URL": redis_url,
        "GDGAN_STORE_URL": (tmp_path / "store").as_uri(),
        "GDGAN_DATA_DIR": str(tmp_path / "data"),
        "GDGAN_CACHE_DIR": str(tmp_path / "cache"),
        "GDGAN_DEVICE": "cpu",
        "GDGAN_NUM_THREADS": "1",
    }.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    monkeypatch.setattr(tasks, "_jobs", None)
    yield tasks.job_store(), open_store()
    get_settings.cache_clear()
