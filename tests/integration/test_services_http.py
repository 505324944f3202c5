"""The HTTP surface under abuse: bearer auth, the bad-input matrix (422 naming the field, 404 for
unknown or malformed ids, 413, path tricks), Redis or the S3 store going down and coming back
(/readyz 503 + a clear error on job creation, then recovery), and schemathesis against both
OpenAPI documents with no 5xx. Real Redis, real SeaweedFS S3, real uvicorn processes; no workers
(jobs created here only need to be queued)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gdgan.localstack.servers import RedisServer, SeaweedS3Server
from gdgan.localstack.stack import Stack
from svcstack import start_stack, wait_for

pytestmark = pytest.mark.integration

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MISSING_DS = "dataset-20260101-0000000000"


class Env:
    def __init__(self, stack: Stack, redis: RedisServer, s3: SeaweedS3Server, home: Path) -> None:
        self.stack, self.redis, self.s3, self.home = stack, redis, s3, home
        self.gw = httpx.Client(base_url=stack.cfg.gateway_url, headers=AUTH, timeout=30)
        self.gen = httpx.Client(base_url=stack.cfg.generator_url, headers=AUTH, timeout=30)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("svc-http")
    redis = RedisServer(dir=home / "redis")
    s3 = SeaweedS3Server(dir=home / "s3", access_key="k-test", secret_key="s-test-secret")
    redis.start()
    s3.start(timeout=90)
    try:
        s3.make_bucket("gdgan")
        extra = {
            **s3.env("gdgan"),
            "GDGAN_API_TOKEN": TOKEN,
            "GDGAN_MAX_BODY_BYTES": "65536",
            "GDGAN_GENERATE_MAX_N": "64",
            "GDGAN_IMPORT_DIR": str(home / "imports"),
        }
        (home / "imports").mkdir()
        stack = start_stack(
            home, redis_url=redis.url, env=extra, trainers=0, evaluators=0, store_url="s3://gdgan"
        )
        try:
            yield Env(stack, redis, s3, home)
        finally:
            stack.stop()
    finally:
        s3.stop()
        redis.stop()


# ------------------------------------------------------------------------------------ auth ---
@pytest.mark.parametrize(
    ("service", "method", "path", "expected"),
    [
        ("gw", "GET", "/v1/jobs", 200),
        ("gw", "GET", "/v1/models", 200),
        ("gw", "POST", "/v1/jobs/train", 422),  # {} lacks dataset_id
        ("gw", "POST", "/v1/generate", 404),  # {} asks for 'gdgan': none trained in this store
        ("gen", "POST", "/v1/generate", 404),
        ("gen", "GET", "/v1/models", 200),
    ],
)
def test_v1_needs_the_bearer_token(env: Env, service: str, method: str, path: str, expected: int) -> None:
    base = env.stack.cfg.gateway_url if service == "gw" else env.stack.cfg.generator_url
    none = httpx.request(method, base + path, json={}, timeout=10)
    assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
    wrong = httpx.request(method, base + path, json={}, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    right = httpx.request(method, base + path, json={}, headers=AUTH, timeout=10)
    assert right.status_code == expected, right.text  # the exact answer: '!= 401' also passed a 500


def test_web_client_and_docs_are_served(env: Env) -> None:
    base = env.stack.cfg.gateway_url
    page = httpx.get(base + "/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert httpx.get(base + "/docs", timeout=10).status_code == 200
    spec = httpx.get(base + "/openapi.json", timeout=10).json()
    for path in ("/v1/datasets", "/v1/jobs/train", "/v1/jobs/{job_id}/events", "/v1/generate", "/readyz"):
        assert path in spec["paths"], path


def test_probes_stay_open(env: Env) -> None:
    for base in (env.stack.cfg.gateway_url, env.stack.cfg.generator_url):
        for p in ("/healthz", "/readyz"):
            assert httpx.get(base + p, timeout=10).status_code == 200, (base, p)
        # /metrics needs the admin scope (GDGAN_API_TOKEN is one); test_services_security has the rest
        assert httpx.get(base + "/metrics", timeout=10).status_code == 401
        assert httpx.get(base + "/metrics", headers=AUTH, timeout=10).status_code == 200


# ----------------------------------------------------------------------------- bad input ---
def _fields(resp: httpx.Response) -> set[str]:
    detail = resp.json()["detail"]
    assert isinstance(detail, list), detail
    return {str(part) for e in detail for part in e["loc"]}


BAD_BODIES: list[tuple[str, str, dict[str, Any], str]] = [
    ("gen", "/v1/generate", {"n": 0}, "n"),
    ("gen", "/v1/generate", {"n": 65}, "n"),  # above GDGAN_GENERATE_MAX_N
    ("gen", "/v1/generate", {"n": "many"}, "n"),
    ("gen", "/v1/generate", {"finding": "Broken|Heart"}, "finding"),
    ("gen", "/v1/generate", {"gender": "X"}, "gender"),
    ("gen", "/v1/generate", {"view": "LL"}, "view"),
    ("gen", "/v1/generate", {"stage": 3}, "stage"),
    ("gen", "/v1/generate", {"format": "gif"}, "format"),
    ("gen", "/v1/generate", {"model": "../../etc/passwd"}, "model"),
    ("gen", "/v1/generate", {"seeed": 1}, "seeed"),
    ("gw", "/v1/generate", {"n": -3}, "n"),
    ("gw", "/v1/generate", {"finding": ["Cardiomegaly", "x" * 65]}, "finding"),
    ("gw", "/v1/jobs/train", {"dataset_id": MISSING_DS, "preset": "huge"}, "preset"),
    ("gw", "/v1/jobs/train", {"dataset_id": MISSING_DS, "model": "vae"}, "model"),
    ("gw", "/v1/jobs/train", {"dataset_id": "../../etc"}, "dataset_id"),
    ("gw", "/v1/jobs/train", {"dataset_id": MISSING_DS, "split_seed": "x"}, "split_seed"),
    ("gw", "/v1/jobs/evaluate", {"dataset_id": MISSING_DS, "finding": "Heart|ache"}, "finding"),
    ("gw", "/v1/jobs/evaluate", {"dataset_id": MISSING_DS, "repeats": 0}, "repeats"),
    ("gw", "/v1/jobs/evaluate", {"dataset_id": MISSING_DS, "strategies": ["smote"]}, "strategies"),
    ("gw", "/v1/jobs/generate", {"n": 0}, "n"),
    ("gw", "/v1/datasets", {"source": "phantom", "n": -1}, "n"),
    ("gw", "/v1/datasets", {"source": "phantom", "size": 48}, "size"),
    ("gw", "/v1/datasets", {"source": "kaggle"}, "source"),
    ("gw", "/v1/datasets", {"source": "nih", "csv": "/etc/passwd", "images": "."}, "csv"),
    ("gw", "/v1/datasets", {"source": "nih", "csv": "../../../etc/passwd", "images": "."}, "csv"),
]


@pytest.mark.parametrize(("service", "path", "body", "field"), BAD_BODIES)
def test_bad_input_is_422_naming_the_field(env: Env, service: str, path: str, body: dict, field: str) -> None:
    client = env.gw if service == "gw" else env.gen
    r = client.post(path, json=body)
    assert r.status_code == 422, (r.status_code, r.text)
    assert field in _fields(r), r.text


def test_malformed_json_is_422(env: Env) -> None:
    for client in (env.gw, env.gen):
        r = client.post("/v1/generate", content=b'{"n": 3,', headers={"content-type": "application/json"})
        assert r.status_code == 422 and "json" in r.text.lower()


def test_oversized_bodies_are_413(env: Env) -> None:
    big = json.dumps({"n": 1, "pad": "x" * 100_000}).encode()
    for client in (env.gw, env.gen):
        assert (
            client.post("/v1/generate", content=big, headers={"content-type": "application/json"}).status_code
            == 413
        )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b" " * 10_000

    r = env.gw.post("/v1/jobs/train", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/job-train-20260101-0000000000",
        "/v1/jobs/..%2F..%2Fetc%2Fpasswd",
        "/v1/jobs/UPPER",
        f"/v1/datasets/{MISSING_DS}",
        "/v1/datasets/..%2Fmanifest.json",
        "/v1/models/gdgan-20260101-0000000000",
        "/v1/models/%2E%2E/samples.png",
        "/v1/reports/report-20260101-0000000000",
        "/v1/reports/report-20260101-0000000000/html",
        "/v1/jobs/job-x-20260101-0000000000/events",
        "/v1/synthetic/synthetic-20260101-0000000000/images.zip",
    ],
)
def test_unknown_or_malformed_ids_are_404(env: Env, path: str) -> None:
    r = env.gw.get(path)
    assert r.status_code == 404, (path, r.status_code, r.text)


def test_wrong_kind_ids_and_models_are_404(env: Env) -> None:
    assert env.gw.post("/v1/jobs/train", json={"dataset_id": MISSING_DS}).status_code == 404
    assert env.gw.post("/v1/jobs/generate", json={"model": "gdgan"}).status_code == 404  # nothing trained yet
    assert env.gen.post("/v1/generate", json={"model": "acgan"}).status_code == 404
    assert env.gw.post("/v1/jobs/job-nope-20260101-0000000000/cancel").status_code == 404


def test_cancel_of_finished_job_is_409(env: Env) -> None:
    r = env.gw.post("/v1/datasets", json={"source": "phantom", "n": 100, "size": 32})
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    assert env.gw.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"  # queued: immediate
    again = env.gw.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409


# ------------------------------------------------------------------------------ schemathesis ---
@pytest.mark.parametrize("service", ["gateway", "generator"])
def test_schemathesis_finds_no_server_errors(env: Env, service: str, tmp_path: Path) -> None:
    base = env.stack.cfg.gateway_url if service == "gateway" else env.stack.cfg.generator_url
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "4",
        "--seed",
        "1",
        "-H",
        f"Authorization: Bearer {TOKEN}",
        "--request-timeout",
        "30",
        "--phases",
        "examples,fuzzing",
        "--generation-database",
        "none",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert httpx.get(base + "/healthz", timeout=10).status_code == 200


def test_schemathesis_stateful_links_find_no_server_errors(env: Env) -> None:
    """Stateful fuzzing over the gateway's OpenAPI links (services/gateway/openapi_links.py): create
    a dataset or a job, then show, cancel or delete what the answer named, with fuzzed bodies and
    ids along the way. Bounded (20 scenarios of at most 6 steps); no answer may be a 5xx."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, Phase

    base = env.stack.cfg.gateway_url
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", headers=AUTH)
    seen: list[tuple[str, str, int]] = []

    # one real job up front, so the list links (GET /v1/jobs -> its first job) also hand on a real id
    assert env.gw.post("/v1/datasets", json={"source": "phantom", "n": 100, "size": 32}).status_code == 202

    class Gateway(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:  # the token, over any generated Authorization
            case.headers = {**(case.headers or {}), **AUTH}

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"timeout": 30}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            seen.append((case.method, case.path, response.status_code))
            assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])

    Gateway.run(
        settings=hypothesis.settings(
            max_examples=20,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    # the links were followed: ids that only an earlier answer could have named were found (a fuzzed
    # id is 404), e.g. a job shown (200) or cancelled (202, or 409 once finished or cancelled)
    followed = {(m, p) for m, p, code in seen if "{" in p and code in (200, 202, 409)}
    assert ("GET", "/v1/jobs/{job_id}") in followed, Counter(seen).most_common()
    assert ("POST", "/v1/jobs/{job_id}/cancel") in followed, Counter(seen).most_common()
    assert httpx.get(base + "/healthz", timeout=10).status_code == 200


# --------------------------------------------------------------------- backends down and back ---
def test_redis_down_then_back(env: Env) -> None:
    env.redis.stop()
    try:
        r = env.gw.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["redis"].startswith("unavailable")
        c = env.gw.post("/v1/datasets", json={"source": "phantom", "n": 100, "size": 32})
        assert c.status_code == 503 and "Redis" in c.json()["detail"]
        assert env.gw.get("/v1/jobs").status_code == 503
    finally:
        env.redis.start()
    wait_for(lambda: env.gw.get("/readyz").status_code == 200, 30, "gateway ready again")
    c = env.gw.post("/v1/datasets", json={"source": "phantom", "n": 100, "size": 32})
    assert c.status_code == 202, c.text


def test_store_down_then_back(env: Env) -> None:
    env.s3.stop()
    try:
        r = env.gw.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["store"].startswith("unavailable")
        assert env.gen.get("/readyz").status_code == 503
        c = env.gw.post("/v1/jobs/train", json={"dataset_id": MISSING_DS})
        assert c.status_code == 503 and "store" in c.json()["detail"]
        assert c.headers.get("retry-after")
    finally:
        env.s3.start(timeout=90)
    wait_for(lambda: env.gw.get("/readyz").status_code == 200, 60, "gateway ready again")
    assert env.gen.get("/readyz").status_code == 200
    assert env.gw.post("/v1/jobs/train", json={"dataset_id": MISSING_DS}).status_code == 404


# ------------------------------------------------------------------------------ local stack ---
def _cli(args: list[str], home: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    env.update(
        {
            "GDGAN_DATA_DIR": str(home / "data"),
            "GDGAN_CACHE_DIR": str(home / "cache"),
            "GDGAN_NUM_THREADS": "1",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "gdgan.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_up_refuses_a_taken_port(tmp_path: Path) -> None:
    import socket

    from gdgan.localstack.servers import free_ports

    gw, gen, rp = free_ports(3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", gw))
        s.listen()
        out = _cli(
            [
                "up",
                "--home",
                str(tmp_path / "st"),
                "--gateway-port",
                str(gw),
                "--generator-port",
                str(gen),
                "--redis-port",
                str(rp),
            ],
            tmp_path,
            timeout=60,
        )
    assert out.returncode == 2
    assert f"gateway port {gw}" in out.stderr and "in use" in out.stderr and "Traceback" not in out.stderr


def test_up_detached_with_s3_then_down(tmp_path: Path) -> None:
    import json as _json

    from gdgan.localstack.servers import free_ports

    gw, gen, rp, s3p = free_ports(4)
    home = tmp_path / "st"
    up = _cli(
        [
            "up",
            "--detach",
            "--s3",
            "--home",
            str(home),
            "--gateway-port",
            str(gw),
            "--generator-port",
            str(gen),
            "--redis-port",
            str(rp),
            "--s3-port",
            str(s3p),
        ],
        tmp_path,
    )
    assert up.returncode == 0, up.stderr
    state = _json.loads((home / "stack.json").read_text())
    try:
        ready = httpx.get(f"http://127.0.0.1:{gw}/readyz", timeout=10).json()
        assert ready["status"] == "ready" and state["store"].startswith("s3://")
        assert {"gateway", "generator", "trainer-0", "evaluator-0"} <= set(state["services"])
        assert (home / "logs" / "gateway.log").exists()
    finally:
        down = _cli(["down", "--home", str(home)], tmp_path, timeout=120)
    assert down.returncode == 0, down.stderr
    pids = [state["supervisor"], *state["services"].values(), *state["servers"].values()]
    for pid in pids:
        wait_for(lambda pid=pid: not _alive(pid), 30, f"process {pid} to stop")
    assert not (home / "stack.json").exists()
    assert _cli(["down", "--home", str(home)], tmp_path, timeout=60).returncode == 2


def _alive(pid: int) -> bool:
    from gdgan.localstack.stack import pid_alive

    return pid_alive(pid)
