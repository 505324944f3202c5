"""The S3 store waits out a restart of its server, within a budget (real SeaweedFS, killed and
started again; nothing mocked).

A short restart costs a store call only time; a longer outage fails it with ``StoreUnavailable``
naming the endpoint and the setting, leaves nothing visible, and does not wait the budget again to
clean up (the partial files have no manifest; ``gdgan store gc`` removes them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gdgan.localstack.servers import SeaweedS3Server
from gdgan.settings import SettingsError, load_settings
from gdgan.store import Manifest, StoreUnavailable, open_store
from gdgan.store.s3 import RetryPolicy, S3Store
from svcstack import wait_for


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SeaweedS3Server]:
    """A server of this test's own: it is killed."""
    srv = SeaweedS3Server(dir=tmp_path / "s3", die_with_parent=True)
    srv.start(timeout=90)
    srv.make_bucket("outage")
    try:
        yield srv
    finally:
        srv.stop()


def _store(srv: SeaweedS3Server, tmp_path: Path, budget_s: float) -> S3Store:
    policy = RetryPolicy(budget_s=budget_s, backoff_s=0.2, backoff_max_s=1.0)
    keys = (srv.access_key, srv.secret_key)
    return S3Store("outage", srv.endpoint, *keys, cache_dir=tmp_path / "c", retry=policy)


def _kill(srv: SeaweedS3Server) -> None:
    assert srv.proc is not None
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    srv._close_log()
    srv.proc = None


def test_a_call_during_a_restart_waits_for_the_server_and_succeeds(
    server: SeaweedS3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(server, tmp_path, budget_s=90)
    w = store.writer("dataset")
    w.put_bytes("before.bin", b"a" * 1000)
    _kill(server)
    outcome: list[object] = []

    def write() -> None:  # while the server is down
        try:
            w.put_bytes("during.bin", b"b" * 1000)
            outcome.append(w.commit())
        except Exception as exc:  # reported below
            outcome.append(exc)

    writer = threading.Thread(target=write)
    with caplog.at_level(logging.WARNING, logger="gdgan.store"):
        writer.start()
        wait_for(lambda: any("retrying" in r.getMessage() for r in caplog.records), 30, "a refused attempt")
        # started from this thread: a server started by a thread dies with it (PR_SET_PDEATHSIG)
        server.start(timeout=90)
        writer.join(120)
    m = outcome[0]
    assert isinstance(m, Manifest), m
    assert store.get_bytes(m.id, "before.bin") == b"a" * 1000
    assert store.get_bytes(m.id, "during.bin") == b"b" * 1000
    assert [x.id for x in store.list()] == [m.id]


def test_an_outage_longer_than_the_budget_fails_naming_it_and_leaves_nothing_visible(
    server: SeaweedS3Server, tmp_path: Path
) -> None:
    store = _store(server, tmp_path, budget_s=1.5)
    with pytest.raises(StoreUnavailable) as exc, store.writer("dataset") as w:
        w.put_bytes("a.bin", b"a")
        _kill(server)
        w.put_bytes("b.bin", b"b")
        w.commit()
    msg = str(exc.value)
    assert server.endpoint in msg and "unreachable" in msg, msg
    assert "gave up after 1.5 s (GDGAN_S3_RETRY_BUDGET_S)" in msg, msg
    server.start(timeout=90)
    assert store.list() == []  # a.bin is stored but invisible: no manifest
    assert not store.exists(w.id)
    assert [k.rsplit("/", 1)[1] for k in store._list_keys(w.id)] == ["a.bin"]  # left for gc


def test_budget_zero_fails_at_the_first_refusal(server: SeaweedS3Server, tmp_path: Path) -> None:
    store = _store(server, tmp_path, budget_s=0)
    _kill(server)
    with pytest.raises(StoreUnavailable, match="unreachable") as exc:
        store.ping()
    assert "gave up" not in str(exc.value)


def test_settings_choose_the_budget_services_wait_less(server: SeaweedS3Server, tmp_path: Path) -> None:
    env = {
        **server.env("outage"),
        "GDGAN_CACHE_DIR": str(tmp_path / "c"),
        "GDGAN_S3_RETRY_BUDGET_S": "42",
        "GDGAN_S3_SERVICE_RETRY_BUDGET_S": "2",
        "GDGAN_S3_RETRY_BACKOFF_S": "0.25",
        "GDGAN_S3_RETRY_BACKOFF_MAX_S": "3",
    }
    s = load_settings(env)
    worker, service = open_store(settings=s), open_store(settings=s, service=True)
    assert isinstance(worker, S3Store) and isinstance(service, S3Store)
    assert worker.retry == RetryPolicy(42, 0.25, 3, "GDGAN_S3_RETRY_BUDGET_S")
    assert service.retry == RetryPolicy(2, 0.25, 3, "GDGAN_S3_SERVICE_RETRY_BUDGET_S")
    _kill(server)
    with pytest.raises(StoreUnavailable, match="GDGAN_S3_SERVICE_RETRY_BUDGET_S"):
        service.ping()


def test_a_backoff_as_long_as_the_hang_timeout_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"GDGAN_S3_RETRY_BACKOFF_MAX_S.*GDGAN_JOB_HANG_TIMEOUT_S"):
        load_settings({"GDGAN_S3_RETRY_BACKOFF_MAX_S": "10", "GDGAN_JOB_HANG_TIMEOUT_S": "10"})
    load_settings({"GDGAN_S3_RETRY_BACKOFF_MAX_S": "10", "GDGAN_JOB_HANG_TIMEOUT_S": "0"})  # hang check off


class CuttingProxy:
    """A TCP proxy in front of the S3 server that, once armed, closes the connection after passing
    ``cut_after`` bytes of an answer: a transfer cut off after its headers, as when the server dies
    in the middle of a download (urllib3 has handed the response over; only the store can retry)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_after: int | None = None
        self.cuts = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                with self.lock:
                    limit = self.cut_after if answers else None
                    if limit is not None and sent + len(data) > limit:
                        self.cut_after, self.cuts = None, self.cuts + 1
                        dst.sendall(data[: max(0, limit - sent)])
                        break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (src, dst):  # shutdown, not only close: it wakes the other direction's recv
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_download_cut_off_mid_body_is_fetched_again(
    server: SeaweedS3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = CuttingProxy((server.host, server.port))
    try:
        policy = RetryPolicy(budget_s=30, backoff_s=0.2, backoff_max_s=1.0)
        keys = (server.access_key, server.secret_key)
        store = S3Store("outage", f"127.0.0.1:{proxy.port}", *keys, cache_dir=tmp_path / "c", retry=policy)
        payload = os.urandom(3 << 20)
        with store.writer("dataset") as w:
            w.put_bytes("big.bin", payload)
            m = w.commit()
        store.manifest(m.id)  # (the manifest's answer is small: the cut below lands in the payload)
        proxy.cut_after = 256 << 10  # past the headers, a quarter of a MiB into the body
        with caplog.at_level(logging.WARNING, logger="gdgan.store"):
            assert store.get_bytes(m.id, "big.bin") == payload  # sha256-verified by the store
        assert proxy.cuts == 1
        assert any("calling again" in r.getMessage() for r in caplog.records)
        impatient = S3Store("outage", f"127.0.0.1:{proxy.port}", *keys, cache_dir=tmp_path / "d")
        proxy.cut_after = 256 << 10
        with pytest.raises(StoreUnavailable, match="unreachable"):
            impatient.get_bytes(m.id, "big.bin")  # budget 0: the cut is the answer
    finally:
        proxy.close()
