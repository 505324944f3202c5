"""The CLI's gateway client following a job over SSE when the gateway goes away: bounded,
announced reconnection attempts (GDGAN_CLIENT_RECONNECTS), resuming with Last-Event-ID, and a
clear final error. Real sockets: a port with nothing behind it, and a small real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from gdgan.cli.client import ClientError, GatewayClient
from gdgan.localstack.servers import free_port
from gdgan.settings import get_settings


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDGAN_CLIENT_RECONNECTS", "3")
    monkeypatch.setenv("GDGAN_CLIENT_RECONNECT_INTERVAL_S", "0.05")
    get_settings.cache_clear()


def test_a_dead_gateway_gives_up_with_a_clear_error(fast_retries: None) -> None:
    """The old client retried every second forever, silently: this test's thread never ended."""
    said: list[str] = []
    url = f"http://127.0.0.1:{free_port()}"
    c = GatewayClient(url, say=said.append)
    outcome: dict[str, BaseException] = {}

    def follow() -> None:
        try:
            list(c.events("job-train-20260101-0000000000"))
        except BaseException as exc:  # the test inspects whatever ended it
            outcome["exc"] = exc

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "the client is still retrying"
    exc = outcome["exc"]
    assert isinstance(exc, ClientError)
    assert "gave up after 3 reconnection attempts" in str(exc) and url in str(exc)
    assert "gdgan jobs show job-train-20260101-0000000000" in str(exc)
    assert [m.split("(attempt ")[1] for m in said] == ["1/3)", "2/3)", "3/3)"]
    assert all("reconnecting in 0.05 s" in m for m in said)


class _DropsOnce(BaseHTTPRequestHandler):
    """First request: one event, then the connection dies mid-stream. Second request: must carry
    Last-Event-ID, gets the terminal status."""

    calls: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.calls.append(self.headers.get("Last-Event-ID"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if len(self.calls) == 1:
            self.send_header("Content-Length", "1000")  # promise more than is sent: a broken stream
            self.end_headers()
            self.wfile.write(b'event: progress\nid: 1-0\ndata: {"step": 1, "total": 2}\n\n')
            self.wfile.flush()
            self.connection.close()
            return
        self.end_headers()
        self.wfile.write(b'event: status\nid: 2-0\ndata: {"status": "succeeded"}\n\n')
        self.close_connection = True

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def flaky_gateway() -> Iterator[str]:
    _DropsOnce.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DropsOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_dropped_stream_resumes_and_says_so(fast_retries: None, flaky_gateway: str) -> None:
    said: list[str] = []
    events = list(GatewayClient(flaky_gateway, say=said.append).events("job-x"))
    assert events == [("progress", {"step": 1, "total": 2}), ("status", {"status": "succeeded"})]
    assert _DropsOnce.calls == [None, "1-0"]  # resumed after the last event it saw
    assert len(said) == 2 and "attempt 1/3" in said[0] and said[1].startswith("reconnected")


def test_demo_images_come_from_the_reports_models() -> None:
    """The old demo asked for 'gdgan' (the latest model at that moment), not the evaluated one."""
    from gdgan.cli.demo import report_models

    report = {
        "id": "report-x",
        "lineage": {
            "repeats": [
                {"repeat": 0, "models": {"gdgan": "gdgan-a", "acgan": "acgan-a", "stage1": "gdgan-stage1-a"}},
                {"repeat": 1, "models": {"gdgan": "gdgan-b", "acgan": "acgan-b"}},
            ]
        },
    }
    assert report_models(report) == {"gdgan": "gdgan-a", "acgan": "acgan-a"}
    with pytest.raises(ClientError, match="report-x names no acgan model"):
        report_models({"id": "report-x", "lineage": {"repeats": [{"models": {"gdgan": "gdgan-a"}}]}})
