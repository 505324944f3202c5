"""The job-status route on the gateway's shared async Redis pool, on a real gateway process and a real
Redis: the live worker view (running_on / stalled), the stored record, 404s, and a 503 once Redis is
gone; next to it, the other way clients follow a job (an SSE stream to the job's end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gdgan.jobs import heartbeat
from gdgan.jobs.records import JobStore, record_key
from gdgan.localstack.servers import RedisServer, free_port
from gdgan.localstack.stack import stop_process
from gdgan.schemas import JobRecord
from svcstack import sse, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, RedisServer]]:
    with RedisServer(dir=tmp_path / "redis") as redis:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
        env.update(
            GDGAN_REDIS_URL=redis.url,
            GDGAN_DATA_DIR=str(tmp_path / "data"),
            GDGAN_LOG_LEVEL="WARNING",
            GDGAN_WORKER_HEARTBEAT_S="1",
            GDGAN_WORKER_DEAD_AFTER_S="600",  # the gateway's reaper must not act on the planted entry
        )
        cmd = [sys.executable, "-m", "gdgan.cli.main", "serve", "gateway", "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(url + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(ready, 120, "gateway ready")
            yield url, redis
        finally:
            stop_process(proc)


def test_status_shows_the_live_worker_and_the_stored_record(gateway: tuple[str, RedisServer]) -> None:
    url, redis = gateway
    jobs = JobStore.from_url(redis.url, ttl_s=600)
    queued = jobs.create("ingest", {"n": 16})
    got = httpx.get(f"{url}/v1/jobs/{queued.id}")
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    assert got.json() == json.loads(jobs.r.get(record_key(queued.id)))  # the stored record
    assert JobRecord.model_validate_json(got.text).status == "queued"

    run = jobs.create("train", {})
    jobs.set_status(run.id, "running", allowed_from={"queued"})
    wid = "host-a:42"
    entry = {"job_id": run.id, "part": None, "task": "gdgan.train", "args": [run.id], "queue": "train"}
    entry.update(worker=wid, node="trainer@a", task_id="t1", t=time.time())
    heartbeat.register(jobs.r, entry)
    jobs.r.set(heartbeat.worker_key(wid), json.dumps({"id": wid, "t": time.time()}), ex=600)
    body = httpx.get(f"{url}/v1/jobs/{run.id}").json()
    assert body["status"] == "running" and not body["stalled"]
    (on,) = body["running_on"]
    assert on["worker"] == "trainer@a" and not on["stalled"] and on["heartbeat_age_s"] < 60

    jobs.r.delete(heartbeat.worker_key(wid))  # the worker is gone
    body = httpx.get(f"{url}/v1/jobs/{run.id}").json()
    assert body["stalled"] and body["running_on"][0]["heartbeat_age_s"] is None

    jobs.set_status(run.id, "succeeded")  # a finished job: no live view, even with a stale entry
    body = httpx.get(f"{url}/v1/jobs/{run.id}").json()
    assert body["status"] == "succeeded" and body["running_on"] == [] and not body["stalled"]

    r = httpx.get(f"{url}/v1/jobs/job-train-20260101-00000000ff")
    assert r.status_code == 404 and "no job" in r.json()["detail"], r.text
    assert httpx.get(f"{url}/v1/jobs/..%2F..%2Fetc").status_code == 404


def test_sse_streams_to_the_end_of_the_job_then_redis_loss_is_a_503(
    gateway: tuple[str, RedisServer],
) -> None:
    url, redis = gateway
    jobs = JobStore.from_url(redis.url, ttl_s=600)
    rec = jobs.create("train", {})
    jobs.set_status(rec.id, "running", allowed_from={"queued"})
    got: list[tuple[str, dict]] = []
    reader = threading.Thread(target=lambda: got.extend(sse(url, rec.id, timeout=60)), daemon=True)
    reader.start()
    wait_for(lambda: got, 30, "the first SSE event")
    jobs.set_progress(rec.id, {"step": 3, "total": 10, "fraction": 0.3})
    jobs.set_status(rec.id, "succeeded")
    reader.join(30)
    assert not reader.is_alive(), "the stream must end with the job"
    events = [e for e, _ in got]
    assert events[0] == "job" and got[0][1]["status"] == "running"
    assert "progress" in events
    assert got[-1] == ("status", {"status": "succeeded", "result": {}, "error": None})

    # a finished job's stream is its record, then the end
    assert [e for e, _ in sse(url, rec.id, timeout=30)] == ["job"]

    redis.stop()
    r = httpx.get(f"{url}/v1/jobs/{rec.id}", timeout=30)
    assert r.status_code == 503 and r.headers.get("retry-after"), r.text
