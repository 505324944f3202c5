"""The integration and e2e tests' stack helper (kept under tests/, not in the shipped ``services``
package): a stack on free loopback ports and a small SSE reader. Real processes only (Redis,
uvicorn, Celery workers); nothing is mocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from gdgan.localstack.servers import RedisServer, free_port, free_ports
from gdgan.localstack.stack import Stack, StackConfig

TERMINAL = ("succeeded", "failed", "cancelled")


def start_stack(
    home: Path,
    redis_url: str = "",
    env: dict[str, str] | None = None,
    trainers: int = 1,
    evaluators: int = 1,
    store_url: str = "",
    s3: bool = False,
) -> Stack:
    """A started stack on free ports; every GDGAN_* setting explicit so the developer's environment
    cannot leak in. One torch thread per process: tests share two cores."""
    gw, gen, rp, s3p = free_ports(4)
    base = {
        "GDGAN_DATA_DIR": str(home / "data"),
        "GDGAN_CACHE_DIR": str(home / "cache"),
        "GDGAN_API_TOKEN": "",
        "GDGAN_NUM_THREADS": "1",
        "GDGAN_DEVICE": "cpu",
        "GDGAN_JOB_PROGRESS_INTERVAL_S": "0.1",
        "GDGAN_LOG_LEVEL": "INFO",
    }
    base.update(env or {})
    cfg = StackConfig(
        home=home / "stack",
        redis_url=redis_url,
        redis_port=rp,
        gateway_port=gw,
        generator_port=gen,
        trainers=trainers,
        evaluators=evaluators,
        store_url=store_url,
        s3=s3,
        s3_port=s3p,
        env=base,
    )
    return Stack(cfg).start(timeout=120)


@contextmanager
def running(stack: Stack, watch: float | None = None) -> Iterator[Stack]:
    """Hold a started stack for a fixture and always stop it, so a failing module cannot leave
    processes behind; ``watch`` supervises it (restarts) every that many seconds meanwhile."""
    done = stack.watch(interval=watch) if watch else None
    try:
        yield stack
    finally:
        if done is not None:
            done.set()
        stack.stop()


@contextmanager
def redis_stack(home: Path, **kwargs: Any) -> Iterator[Stack]:
    """A stack on its own fresh Redis under ``home/redis`` (``kwargs`` go to :func:`start_stack`);
    the stack stops before its Redis does."""
    with (
        RedisServer(dir=home / "redis") as redis,
        running(start_stack(home, redis_url=redis.url, **kwargs)) as s,
    ):
        yield s


def serve_generator(
    root: Path, env: dict[str, str], log: bool = False, timeout: float = 60.0
) -> tuple[subprocess.Popen[bytes], str]:
    """The generator service alone, as a subprocess on a free port, serving the file store under
    ``root``; the caller's GDGAN_* variables are dropped so only ``env`` configures it. ``log``
    keeps its output in ``root/generator-<port>.log`` (quoted if it exits before it is ready)."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    full.update(
        {
            "GDGAN_DATA_DIR": str(root / "data"),
            "GDGAN_CACHE_DIR": str(root / "cache"),
            "GDGAN_STORE_URL": (root / "store").resolve().as_uri(),
            "GDGAN_DEVICE": "cpu",
            **env,
        }
    )
    log_path = root / f"generator-{port}.log"
    out = open(log_path, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "gdgan.cli.main", "serve", "generator", "--port", str(port)],
        env=full,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            if proc.poll() is not None:
                tail = log_path.read_text()[-2000:] if log else ""
                raise RuntimeError(
                    f"generator exited with {proc.returncode} before it was ready\n{tail}"
                ) from None
            return False

    wait_for(ready, timeout, "generator ready")
    return proc, url


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess on a fresh file store under ``root``: the developer's
    GDGAN_* variables dropped, CPU only, one OpenMP thread (tests share two cores)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    env.update(
        GDGAN_STORE_URL=(root / "store").as_uri(),
        GDGAN_DATA_DIR=str(root / "data"),
        GDGAN_CACHE_DIR=str(root / "cache"),
        GDGAN_DEVICE="cpu",
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def cli_json(args: list[str], env: dict[str, str], timeout: float = 900) -> dict[str, Any]:
    """Run the real ``gdgan`` CLI in a subprocess with ``--json`` and return its one JSON object,
    failing (with the tail of stderr) on a non-zero exit or on anything else printed on stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "gdgan.cli.main", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout  # exactly one JSON object
    return dict(json.loads(lines[0]))


def sse(
    base_url: str, job_id: str, token: str = "", timeout: float = 300.0
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of GET /v1/jobs/{id}/events until the server closes the stream."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout)) as c,
        c.stream("GET", f"/v1/jobs/{job_id}/events") as resp,
    ):
        resp.raise_for_status()
        event, data = "message", ""
        for line in resp.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                yield event, json.loads(data)
                event, data = "message", ""


def wait_job(base_url: str, job_id: str, timeout: float = 300.0, token: str = "") -> dict[str, Any]:
    """Poll until the job ends; returns the record."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = httpx.get(f"{base_url}/v1/jobs/{job_id}", headers=headers, timeout=10).json()
        if rec["status"] in TERMINAL:
            return rec
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def wait_for(pred: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
