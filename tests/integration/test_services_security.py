"""The OWASP API Top-10 answers of docs/notes/security.md, against real processes: a gateway and a
generator (uvicorn, ``gdgan serve``) on their own Redis and a SeaweedFS S3 bucket, no workers (a
job created here stays queued, i.e. unfinished, which is what the quotas count).

Each test names the item it proves: scopes (API5), the owner of a job (API1/API6), quotas and
rate limits answered 429 with Retry-After (API4), security headers and a sandboxed report (API8,
the report also in headless Chromium), no server paths in job records (API3), /metrics (API2).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from gdgan.localstack.servers import RedisServer, SeaweedS3Server
from gdgan.localstack.stack import Stack
from svcstack import start_stack, wait_for

from services.common.auth import token_id

pytestmark = pytest.mark.integration

TOKENS = {
    "read": "read-" + "r" * 16,
    "generate": "gen-" + "g" * 16,
    "train": "train-" + "t" * 16,
    "train2": "train2-" + "u" * 16,
    "quota": "quota-" + "q" * 16,
    "hourly": "hourly-" + "h" * 16,
    "images": "images-" + "i" * 16,
    "images2": "images2-" + "j" * 16,
    "streams": "streams-" + "s" * 16,
    "streams2": "streams2-" + "v" * 16,
    "admin": "admin-" + "a" * 16,
}
SCOPES = {
    TOKENS["read"]: ["read"],
    TOKENS["generate"]: ["generate"],
    TOKENS["train"]: ["read", "train"],
    TOKENS["train2"]: ["read", "train"],
    TOKENS["quota"]: ["read", "train"],
    TOKENS["hourly"]: ["train"],
    TOKENS["images"]: ["generate"],
    TOKENS["images2"]: ["generate"],
    TOKENS["streams"]: ["read", "train"],
    TOKENS["streams2"]: ["read"],
    TOKENS["admin"]: ["admin"],
}
LEGACY = "legacy-single-token-xyz"  # GDGAN_API_TOKEN: every scope, as before scopes existed
PHANTOM = {"source": "phantom", "n": 100, "size": 32}


def hdr(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


class Env:
    def __init__(self, stack: Stack, redis_url: str, s3: SeaweedS3Server, bucket: str, home: Path) -> None:
        self.stack, self.redis_url, self.s3, self.bucket, self.home = stack, redis_url, s3, bucket, home
        self.gw = stack.cfg.gateway_url
        self.gen = stack.cfg.generator_url

    def call(self, who: str, method: str, path: str, base: str = "", **kw: Any) -> httpx.Response:
        headers = {**hdr(who), **kw.pop("headers", {})}
        return httpx.request(method, (base or self.gw) + path, headers=headers, timeout=30, **kw)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, s3_server: SeaweedS3Server) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("svc-security")
    bucket = s3_server.make_bucket("sec-" + str(int(time.time() * 1000))[-9:])
    (home / "imports" / "nih" / "images").mkdir(parents=True)
    (home / "imports" / "nih" / "Data_Entry.csv").write_text("Image Index,Finding Labels\n")
    extra = {
        **s3_server.env(bucket),
        "GDGAN_API_TOKENS": json.dumps(SCOPES),
        "GDGAN_API_TOKEN": LEGACY,
        "GDGAN_IMPORT_DIR": str(home / "imports"),
        "GDGAN_QUOTA_CONCURRENT_JOBS": "2",
        "GDGAN_QUOTA_JOBS_PER_HOUR": "6",
        "GDGAN_QUOTA_IMAGES_PER_MINUTE": "10",
        "GDGAN_GENERATE_MAX_N": "8",
        "GDGAN_SSE_MAX_STREAMS": "2",
        "GDGAN_SSE_MAX_DURATION_S": "20",
        "GDGAN_SSE_REDIS_CONNECTIONS": "2",
    }
    with RedisServer(dir=home / "redis") as rs:
        stack = start_stack(
            home, redis_url=rs.url, env=extra, trainers=0, evaluators=0, store_url=f"s3://{bucket}"
        )
        try:
            yield Env(stack, rs.url, s3_server, bucket, home)
        finally:
            stack.stop()


# ------------------------------------------------------------------------- API2 / API5: scopes ---
@pytest.mark.parametrize(
    ("who", "method", "path", "body", "expected", "missing"),
    [
        ("read", "GET", "/v1/jobs", None, 200, None),
        ("read", "POST", "/v1/datasets", PHANTOM, 403, "train"),
        ("read", "POST", "/v1/jobs/train", {"dataset_id": "dataset-20260101-0000000000"}, 403, "train"),
        ("read", "POST", "/v1/generate", {"n": 1}, 403, "generate"),
        ("read", "POST", "/v1/jobs/generate", {"n": 1}, 403, "generate"),
        ("generate", "GET", "/v1/jobs", None, 403, "read"),
        ("generate", "GET", "/v1/models", None, 403, "read"),
        ("generate", "POST", "/v1/generate", {"n": 1}, 404, None),  # allowed; no model in this store
        ("train", "POST", "/v1/generate", {"n": 1}, 403, "generate"),
        ("train", "POST", "/v1/jobs/train", {"dataset_id": "dataset-20260101-0000000000"}, 404, None),
        ("admin", "POST", "/v1/generate", {"n": 1}, 404, None),
        ("admin", "GET", "/v1/reports", None, 200, None),
    ],
)
def test_each_route_needs_its_scope(
    env: Env, who: str, method: str, path: str, body: Any, expected: int, missing: str | None
) -> None:
    r = env.call(who, method, path, json=body)
    assert r.status_code == expected, r.text
    if missing:
        assert f"'{missing}' scope" in r.json()["detail"], r.text


def test_generator_checks_scopes_too(env: Env) -> None:
    assert env.call("read", "POST", "/v1/generate", base=env.gen, json={"n": 1}).status_code == 403
    assert env.call("read", "GET", "/v1/models", base=env.gen).status_code == 200
    assert env.call("generate", "POST", "/v1/generate", base=env.gen, json={"n": 1}).status_code == 404
    assert httpx.post(env.gen + "/v1/generate", json={"n": 1}, timeout=10).status_code == 401


def test_wrong_token_is_401_and_the_single_token_is_admin(env: Env) -> None:
    for bad in ("", "Bearer nope", "Bearer " + TOKENS["read"][:-1], "Basic " + TOKENS["read"]):
        r = httpx.get(env.gw + "/v1/jobs", headers={"Authorization": bad} if bad else {}, timeout=10)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (bad, r.text)
    legacy = {"Authorization": f"Bearer {LEGACY}"}
    assert httpx.get(env.gw + "/metrics", headers=legacy, timeout=10).status_code == 200
    assert httpx.get(env.gw + "/v1/jobs", headers=legacy, timeout=10).status_code == 200


def test_metrics_need_admin_probes_stay_open(env: Env) -> None:
    for base in (env.gw, env.gen):
        assert httpx.get(base + "/metrics", timeout=10).status_code == 401
        r = env.call("read", "GET", "/metrics", base=base)
        assert r.status_code == 403 and "'admin' scope" in r.json()["detail"]
        ok = env.call("admin", "GET", "/metrics", base=base)
        assert ok.status_code == 200 and "gdgan_http_requests_total" in ok.text
        for probe in ("/healthz", "/readyz"):
            assert httpx.get(base + probe, timeout=10).status_code == 200


# ------------------------------------------------------------ API1 / API6: a job and its owner ---
def test_only_the_creator_or_admin_cancels(env: Env) -> None:
    created = env.call("train", "POST", "/v1/datasets", json=PHANTOM)
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]
    rec = env.call("read", "GET", f"/v1/jobs/{job_id}").json()
    assert rec["owner"] == token_id(TOKENS["train"])
    raw = redis.Redis.from_url(env.redis_url).get(f"gdgan:job:{job_id}")
    assert raw is not None and TOKENS["train"].encode() not in raw  # the hash, never the token
    other = env.call("train2", "POST", f"/v1/jobs/{job_id}/cancel")
    assert other.status_code == 403 and "created this job" in other.json()["detail"]
    assert env.call("read", "POST", f"/v1/jobs/{job_id}/cancel").status_code == 403
    assert env.call("train", "POST", f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"

    second = env.call("train2", "POST", "/v1/datasets", json=PHANTOM).json()["job_id"]
    assert env.call("admin", "POST", f"/v1/jobs/{second}/cancel").json()["status"] == "cancelled"


# ------------------------------------------------------------------ API4: quotas and rate limits ---
def _retry_after(r: httpx.Response) -> int:
    assert r.status_code == 429, (r.status_code, r.text)
    return int(r.headers["retry-after"])


def test_concurrent_jobs_per_token(env: Env) -> None:
    ids = [env.call("quota", "POST", "/v1/datasets", json=PHANTOM).json()["job_id"] for _ in range(2)]
    third = env.call("quota", "POST", "/v1/datasets", json=PHANTOM)
    assert _retry_after(third) >= 1 and "2 unfinished jobs" in third.json()["detail"]
    # another token is not held back by this one's jobs
    others = env.call("train2", "POST", "/v1/datasets", json=PHANTOM)
    assert others.status_code == 202
    env.call("train2", "POST", f"/v1/jobs/{others.json()['job_id']}/cancel")
    # a finished (here: cancelled) job frees its slot
    assert env.call("quota", "POST", f"/v1/jobs/{ids[0]}/cancel").status_code == 202
    again = env.call("quota", "POST", "/v1/datasets", json=PHANTOM)
    assert again.status_code == 202, again.text
    for jid in (ids[1], again.json()["job_id"]):
        env.call("quota", "POST", f"/v1/jobs/{jid}/cancel")


def test_jobs_per_hour(env: Env) -> None:
    for _ in range(6):  # GDGAN_QUOTA_JOBS_PER_HOUR=6; each cancelled at once so concurrency is no limit
        r = env.call("hourly", "POST", "/v1/datasets", json=PHANTOM)
        assert r.status_code == 202, r.text
        env.call("admin", "POST", f"/v1/jobs/{r.json()['job_id']}/cancel")
    seventh = env.call("hourly", "POST", "/v1/datasets", json=PHANTOM)
    # the bucket refills one job per 3600/6 s: the answer says so
    assert 1 <= _retry_after(seventh) <= 600 and "per 3600 s" in seventh.json()["detail"]


def test_images_per_minute_and_max_n(env: Env) -> None:
    first = env.call("images", "POST", "/v1/generate", json={"n": 8})
    assert first.status_code == 404, first.text  # under the quota: passed on (no model in this store)
    second = env.call("images", "POST", "/v1/generate", json={"n": 8})
    wait = _retry_after(second)
    assert 1 <= wait <= 60 and "images" in second.json()["detail"]
    assert env.call("images2", "POST", "/v1/generate", json={"n": 8}).status_code == 404  # its own budget
    too_many = env.call("images2", "POST", "/v1/generate", json={"n": 9})  # GDGAN_GENERATE_MAX_N=8
    assert too_many.status_code == 422 and "n" in str(too_many.json()["detail"][0]["loc"])


def test_body_limit_holds_for_every_token(env: Env) -> None:
    big = json.dumps({"n": 1, "pad": "x" * 2_000_000}).encode()
    r = env.call("admin", "POST", "/v1/generate", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413


# --------------------------------------------------------------------------- API4: event streams ---
def _open_stream(env: Env, who: str, job_id: str, out: list[Any], first: threading.Event) -> None:
    """Read one job's event stream to its end, recording (first event, end time)."""
    with (
        httpx.Client(base_url=env.gw, headers=hdr(who), timeout=60) as c,
        c.stream("GET", f"/v1/jobs/{job_id}/events") as resp,
    ):
        if resp.status_code != 200:
            out.append(("status", resp.status_code, resp.headers.get("retry-after")))
            first.set()
            return
        for line in resp.iter_lines():
            if line.startswith("data:"):
                out.append(("data", json.loads(line[5:])))
                first.set()
        out.append(("closed", time.monotonic()))


def _streams(env: Env, who: list[str], job_id: str) -> tuple[list[threading.Thread], list[list[Any]]]:
    results: list[list[Any]] = [[] for _ in who]
    firsts = [threading.Event() for _ in who]
    threads = [
        threading.Thread(target=_open_stream, args=(env, w, job_id, results[i], firsts[i]))
        for i, w in enumerate(who)
    ]
    for t in threads:
        t.start()
    for f in firsts:
        assert f.wait(60)
    # the job's record comes first on each
    assert all(r[0][0] == "data" and r[0][1]["id"] == job_id for r in results), results
    return threads, results


def test_event_streams_are_bounded(env: Env) -> None:
    job_id = env.call("streams", "POST", "/v1/datasets", json=PHANTOM).json()["job_id"]  # stays queued
    t0 = time.monotonic()
    threads, results = _streams(env, ["streams", "streams"], job_id)
    # a third stream of the same token is refused while its two (GDGAN_SSE_MAX_STREAMS) are open
    third = env.call("streams", "GET", f"/v1/jobs/{job_id}/events")
    assert _retry_after(third) >= 1 and "open event streams" in third.json()["detail"]
    more, more_results = _streams(env, ["streams2", "streams2"], job_id)  # another token's are its own
    # four open streams share GDGAN_SSE_REDIS_CONNECTIONS=2 named Redis connections
    clients = redis.Redis.from_url(env.redis_url).client_list()
    assert 1 <= sum(1 for c in clients if c.get("name") == "gdgan-sse") <= 2, clients
    for t in threads + more:
        t.join(90)
    # GDGAN_SSE_MAX_DURATION_S closed them although the job is still queued, and freed their slots
    assert all(r[-1][0] == "closed" and r[-1][1] - t0 < 90 for r in results + more_results)
    # a client that walks away frees its slot too
    for _ in range(3):
        with (
            httpx.Client(base_url=env.gw, headers=hdr("streams"), timeout=30) as c,
            c.stream("GET", f"/v1/jobs/{job_id}/events") as resp,
        ):
            assert resp.status_code == 200 and next(resp.iter_lines()).startswith("id:")
        wait_for(lambda: _open_slots(env, "streams") == 0, 30, "the stream's slot to be freed")
    env.call("streams", "POST", f"/v1/jobs/{job_id}/cancel")


def _open_slots(env: Env, who: str) -> int:
    return int(redis.Redis.from_url(env.redis_url).zcard(f"gdgan:quota:{token_id(TOKENS[who])}:streams"))


# -------------------------------------------------------------------- API3: no server paths out ---
def test_job_records_show_no_server_paths(env: Env) -> None:
    body = {"source": "nih", "csv": "nih/Data_Entry.csv", "images": "nih/images"}
    r = env.call("train", "POST", "/v1/datasets", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    home = str(env.home)
    shown = env.call("read", "GET", f"/v1/jobs/{job_id}").json()
    assert shown["params"]["csv"] == "nih/Data_Entry.csv" and shown["params"]["images"] == "nih/images"
    listed = env.call("read", "GET", "/v1/jobs").text
    assert home not in json.dumps(shown) and home not in listed
    # the worker still gets the resolved path: only what leaves the gateway is relative
    raw = json.loads(redis.Redis.from_url(env.redis_url).get(f"gdgan:job:{job_id}"))
    assert raw["params"]["csv"].startswith(str(env.home.resolve()))
    with (
        httpx.Client(base_url=env.gw, headers=hdr("read"), timeout=30) as c,
        c.stream("GET", f"/v1/jobs/{job_id}/events") as resp,
    ):
        first = next(line for line in resp.iter_lines() if line.startswith("data:"))
    assert home not in first and "nih/Data_Entry.csv" in first
    outside = env.call("train", "POST", "/v1/datasets", json={**body, "csv": "/etc/passwd"})
    assert outside.status_code == 422 and home not in outside.text and "GDGAN_IMPORT_DIR" in outside.text
    env.call("train", "POST", f"/v1/jobs/{job_id}/cancel")


# ------------------------------------------------------------------------- API8: headers, CSP ---
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.mark.parametrize(
    ("path", "who", "status"),
    [
        ("/", None, 200),
        ("/js/app.js", None, 200),
        ("/healthz", None, 200),
        ("/v1/jobs", None, 401),
        ("/v1/jobs", "read", 200),
        ("/v1/jobs/job-x-20260101-0000000000", "read", 404),
        ("/openapi.json", None, 200),
    ],
)
def test_security_headers_on_every_answer(env: Env, path: str, who: str | None, status: int) -> None:
    r = httpx.get(env.gw + path, headers=hdr(who) if who else {}, timeout=10)
    assert r.status_code == status
    for k, v in HEADERS.items():
        assert r.headers.get(k) == v, (path, k, r.headers)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp.split("style-src")[0]
    if path.startswith("/v1/"):
        assert "sandbox" in csp and "default-src 'none'" in csp
    else:
        assert "script-src 'self';" in csp and "object-src 'none'" in csp


def test_docs_allow_only_their_own_inline_script(env: Env) -> None:
    r = httpx.get(env.gw + "/docs", timeout=10)
    csp = r.headers["content-security-policy"]
    assert r.status_code == 200 and "'sha256-" in csp and "'unsafe-inline'" not in csp.split("style-src")[0]
    assert int(r.headers["content-length"]) == len(r.content)


EVIL_REPORT = b"""<!doctype html><html><head><title>report</title><style>h1 {color: red}</style></head>
<body><h1>Report</h1><script>document.title = 'pwned'; fetch('/v1/jobs')</script>
<img src="x" onerror="document.title = 'pwned-too'"></body></html>"""


@pytest.fixture(scope="module")
def evil_report(env: Env) -> str:
    """A report whose HTML carries script, written straight into the stack's S3 bucket."""
    from gdgan.store.s3 import S3Store

    store = S3Store(
        bucket=env.bucket,
        endpoint=env.s3.endpoint,
        access_key=env.s3.access_key,
        secret_key=env.s3.secret_key,
        cache_dir=env.home / "s3-cache",
    )
    w = store.writer("report")
    w.put_bytes("report.html", EVIL_REPORT)
    w.put_json("report.json", {"finding": "Cardiomegaly"})
    return w.commit().id


def test_report_html_is_served_sandboxed(env: Env, evil_report: str) -> None:
    r = env.call("read", "GET", f"/v1/reports/{evil_report}/html")
    assert r.status_code == 200 and b"<script>" in r.content
    csp = r.headers["content-security-policy"]
    assert "sandbox" in csp.split(";")[-1] and "script-src" not in csp and "default-src 'none'" in csp


def test_report_html_cannot_run_script_in_chromium(env: Env, evil_report: str) -> None:
    """Opened straight in a browser tab (the token sent as a header), the stored report renders
    but its script and its event handler never run."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Chromium not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--headless=new", "--no-sandbox"])
        try:
            ctx = browser.new_context(extra_http_headers=hdr("read"))
            page = ctx.new_page()
            blocked: list[str] = []
            page.on("console", lambda m: blocked.append(m.text) if "sandboxed" in m.text else None)
            page.goto(f"{env.gw}/v1/reports/{evil_report}/html")
            assert page.locator("h1").inner_text() == "Report"  # rendered...
            page.wait_for_timeout(500)
            assert page.title() == "report", page.title()  # ...but neither the script nor onerror ran
            assert any("script" in m for m in blocked), blocked
        finally:
            browser.close()
