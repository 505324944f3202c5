"""Local Redis and SeaweedFS S3 servers: start when ready, clear port-in-use errors, clean stop."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
import redis
from gdgan.localstack.servers import PortInUseError, RedisServer, SeaweedS3Server, free_port, port_in_use


def test_redis_fixture_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        client.close()


def test_redis_start_stop_and_log(tmp_path: Path) -> None:
    server = RedisServer(dir=tmp_path)
    with server:
        assert server.running and port_in_use(server.port)
        assert redis.Redis(port=server.port).ping()
    assert not server.running
    assert server.log_path.is_file() and server.log_path.stat().st_size > 0
    assert not port_in_use(server.port)


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port}.*already in use"):
            RedisServer(port=port, dir=tmp_path).start()
        with pytest.raises(PortInUseError, match=f"port {port}"):
            SeaweedS3Server(port=port, dir=tmp_path).start()


def test_s3_fixture_round_trip(s3_server: SeaweedS3Server, s3_bucket: str) -> None:
    client = s3_server.client()
    client.put_object(s3_bucket, "a/b.txt", io.BytesIO(b"hello"), 5)
    resp = client.get_object(s3_bucket, "a/b.txt")
    try:
        assert resp.read() == b"hello"
    finally:
        resp.close()
        resp.release_conn()
    assert s3_server.env(s3_bucket)["GDGAN_S3_ENDPOINT"] == s3_server.endpoint


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert not port_in_use(port)


def test_redis_persist_survives_restart(tmp_path: Path) -> None:
    port = free_port()
    with RedisServer(port=port, dir=tmp_path, persist=True):
        c = redis.Redis(port=port)
        c.set("job:1", "queued")
        c.close()
    with RedisServer(port=port, dir=tmp_path, persist=True):
        c = redis.Redis(port=port)
        assert c.get("job:1") == b"queued"
        c.close()


def test_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """die_with_parent: a SIGKILLed test session leaves no orphan server holding a port."""
    import os
    import signal
    import subprocess
    import sys
    import time

    port = free_port()
    code = (
        "from gdgan.localstack.servers import RedisServer\n"
        f"RedisServer(port={port}, dir={str(tmp_path)!r}, die_with_parent=True).start()\n"
        "print('up', flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "up"
        assert port_in_use(port)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 10
    while port_in_use(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_in_use(port)
