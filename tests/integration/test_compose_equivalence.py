"""Compose-equivalence: run each gdgan service of docker-compose.yml exactly as compose would.

Why: Docker cannot run here, so the compose file's wiring (commands, environment, URLs, ports,
credentials, bucket, health checks) is proven by executing it. For every gdgan service the test
takes the service's exact `command` and `environment` (interpolated from .env.example, as
`docker compose` does from .env), plus the image's own ENV from docker/Dockerfile, and runs it as
a local process. Only what a container network provides is substituted:

- host names become loopback addresses: `redis:6379` -> the local Redis (valkey) server,
  `minio:9000` -> a local SeaweedFS S3 server started with compose's MINIO_ROOT_USER/PASSWORD,
  `gateway:8000` / `generator:8001` -> free local ports, `--host 0.0.0.0` -> 127.0.0.1;
- the bucket is created the way the minio-init service's `mc mb` command names it;
- the image's paths (/var/lib/gdgan, /var/cache/gdgan, /tmp, /home/gdgan) move under tmp_path.

Then each service must become healthy by compose's own health check command (docker/healthcheck.py
with the same arguments), answer /readyz and /healthz, and the workers must consume the queues
the design assigns them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from gdgan.localstack.servers import SeaweedS3Server, free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0
WORKER_QUEUES = {"trainer": "train", "evaluator": "eval"}


def _load_compose_helpers() -> ModuleType:
    """The compose interpolation/merge helpers live with the static compose tests (one copy)."""
    path = ROOT / "tests" / "unit" / "test_deploy_compose.py"
    spec = importlib.util.spec_from_file_location("gdgan_compose_helpers", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


H = _load_compose_helpers()


def image_env() -> dict[str, str]:
    """ENV of docker/Dockerfile's final stage, minus PATH (set below to this venv)."""
    final = (ROOT / "docker" / "Dockerfile").read_text().split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", final, flags=re.M):
        env.update(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", block))
    env.pop("PATH", None)
    return env


def rewrite(value: str, hosts: dict[str, str], paths: dict[str, str]) -> str:
    for old, new in hosts.items():
        value = value.replace(old, new)
    for old, new in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        if value == old or value.startswith(old + "/"):
            return new + value[len(old) :]
    return value


class Service:
    """One compose service as a local process."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], healthcheck: list[str], log: Path
    ) -> None:
        self.name, self.argv, self.env, self.healthcheck, self.log_path = name, argv, env, healthcheck, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.env["HOME"],
            start_new_session=True,
        )

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.healthcheck, env=self.env, capture_output=True, text=True, timeout=60)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return H.load_compose(H.COMPOSE)


@pytest.fixture(scope="module")
def minio(compose: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    """Stands in for the minio service, with the root credentials compose gives it."""
    env = H.service_env(compose["services"]["minio"])
    server = SeaweedS3Server(
        dir=tmp_path_factory.mktemp("minio"),
        access_key=env["MINIO_ROOT_USER"],
        secret_key=env["MINIO_ROOT_PASSWORD"],
    )
    server.start(timeout=60)
    try:
        # what minio-init does: `mc mb --ignore-existing <alias>/<bucket>`
        script = " ".join(compose["services"]["minio-init"]["command"])
        bucket = re.search(r"mc mb --ignore-existing \S+?/(\S+)", script).group(1)
        server.make_bucket(bucket)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(
    compose: dict[str, Any],
    minio: SeaweedS3Server,
    redis_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Service]]:
    base = tmp_path_factory.mktemp("compose-services")
    gw_port, gen_port = free_ports(2)
    redis = urlsplit(redis_server)
    hosts = {
        "redis:6379": f"{redis.hostname}:{redis.port}",
        "minio:9000": minio.address,
        "gateway:8000": f"127.0.0.1:{gw_port}",
        "generator:8001": f"127.0.0.1:{gen_port}",
    }
    ports = {"gateway": str(gw_port), "generator": str(gen_port)}
    services: dict[str, Service] = {}
    for name in H.GDGAN_SERVICES:
        root = base / name
        paths = {
            p: str(root / p.strip("/").replace("/", "-"))
            for p in ("/var/lib/gdgan", "/var/cache/gdgan", "/tmp", "/home/gdgan")
        }
        for p in paths.values():
            Path(p).mkdir(parents=True)
        env = {k: rewrite(v, hosts, paths) for k, v in image_env().items()}
        env.update({k: rewrite(v, hosts, paths) for k, v in H.service_env(compose["services"][name]).items()})
        env.update(
            {
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "TMPDIR": paths["/tmp"],
            }
        )
        env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")})  # machine quirk
        argv = list(compose["services"][name]["command"])
        argv[0] = str(Path(sys.executable).parent / argv[0])
        if "--host" in argv:
            argv[argv.index("--host") + 1] = "127.0.0.1"
        if "--port" in argv:
            argv[argv.index("--port") + 1] = ports[name]
        hc = list(compose["services"][name]["healthcheck"]["test"])
        assert hc[:3] == ["CMD", "python", "/opt/gdgan/healthcheck.py"]
        hc = [sys.executable, str(ROOT / "docker" / "healthcheck.py"), *hc[3:]]
        hc = [re.sub(r"127\.0\.0\.1:800[01]", f"127.0.0.1:{ports.get(name, '')}", a) for a in hc]
        services[name] = Service(name, argv, env, hc, base / f"{name}.log")
    try:
        for svc in services.values():
            svc.start()
        yield services
    finally:
        for svc in services.values():
            svc.stop()


def wait_healthy(svc: Service) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        assert svc.proc is not None
        if svc.proc.poll() is not None:
            pytest.fail(f"{svc.name} exited with {svc.proc.returncode}:\n{svc.log_tail()}")
        result = svc.check()
        last = result.stdout + result.stderr
        if result.returncode == 0:
            return result.stdout
        time.sleep(1.0)
    pytest.fail(
        f"{svc.name} not healthy after {READY_TIMEOUT_S:.0f}s; last check: {last}\nlog:\n{svc.log_tail()}"
    )


@pytest.mark.parametrize("name", ["gateway", "generator"])
def test_web_service_becomes_ready(stack: dict[str, Service], name: str) -> None:
    svc = stack[name]
    assert "/readyz" in wait_healthy(svc)
    port = svc.argv[svc.argv.index("--port") + 1]
    for path in ("/readyz", "/healthz"):
        r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert r.status_code == 200, f"{name} {path}: {r.status_code} {r.text}"
    body = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()
    assert all(v == "ok" for v in body.get("checks", {}).values()), body  # Redis and S3 really reached


def test_gateway_enforces_the_api_token_from_env(stack: dict[str, Service]) -> None:
    svc = stack["gateway"]
    wait_healthy(svc)
    port = svc.argv[svc.argv.index("--port") + 1]
    url = f"http://127.0.0.1:{port}/v1/jobs"
    assert httpx.get(url, timeout=10).status_code == 401
    token = svc.env["GDGAN_API_TOKEN"]
    r = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("name", ["trainer", "evaluator"])
def test_worker_answers_ping_and_consumes_its_queue(stack: dict[str, Service], name: str) -> None:
    svc = stack[name]
    assert "pong" in wait_healthy(svc)
    from celery import Celery

    app = Celery(broker=svc.env["GDGAN_REDIS_URL"])
    node = f"{name}-{svc.proc.pid}@{socket.gethostname()}"  # gdgan.cli.serve: "<role>-<pid>@<host>"
    try:
        replies = app.control.inspect(destination=[node], timeout=5).active_queues() or {}
    finally:
        app.close()
    assert node in replies, f"{node} did not answer; got {sorted(replies)}\n{svc.log_tail()}"
    assert [q["name"] for q in replies[node]] == [WORKER_QUEUES[name]]
