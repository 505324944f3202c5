"""Ownership and error mapping through the real stack (Redis, uvicorn, two Celery trainers, a
local store):

- a worker whose lease is gone (it stalled past GDGAN_JOB_LEASE_S, and a redelivered task took
  the job over) stops writing to that run: no progress, no checkpoint commit, no outcome; the
  second worker finishes the job from the last checkpoint;
- a payload file missing from the local store is a 500 with the traceback in the gateway log
  (the old handler called every OSError 'job queue unavailable', a 503).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from celery import Celery
from gdgan.data.dataset import LABELS_FILE
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.localstack.servers import RedisServer
from gdgan.localstack.stack import Stack
from gdgan.store.local import LocalStore
from svcstack import start_stack, wait_for, wait_job

pytestmark = pytest.mark.integration

STEPS, EVERY = 80, 10


class Env:
    def __init__(self, stack: Stack, redis_url: str, store: LocalStore) -> None:
        self.stack, self.redis_url, self.store = stack, redis_url, store
        self.api = httpx.Client(base_url=stack.cfg.gateway_url, timeout=60)
        self.r = redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("svc-lease")
    store_dir = home / "store"
    with RedisServer(dir=home / "redis") as server:
        s = start_stack(
            home,
            redis_url=server.url,
            env={"GDGAN_JOB_LEASE_S": "3"},
            trainers=2,
            evaluators=0,
            store_url=store_dir.resolve().as_uri(),
        )
        try:
            yield Env(s, server.url, LocalStore(store_dir, cache_dir=home / "test-cache"))
        finally:
            s.stop()


def _events(env: Env, job_id: str) -> list[tuple[str, dict]]:
    raw = env.r.xrange(f"gdgan:job:{job_id}:events")
    return [(f["event"], json.loads(f["data"])) for _, f in raw]


def _train_acgan(env: Env, dataset_id: str) -> str:
    body = {
        "dataset_id": dataset_id,
        "model": "acgan",
        "preset": "tiny",
        "overrides": {"steps": STEPS, "checkpoint_every": EVERY},
    }
    return env.api.post("/v1/jobs/train", json=body).json()["job_id"]


def test_a_worker_that_lost_its_lease_stops_writing(env: Env) -> None:
    ds = make_phantom(PhantomConfig(n=300, size=32, seed=4)).save(env.store)
    job_id = _train_acgan(env, ds.id)

    def progress() -> dict:
        return env.api.get(f"/v1/jobs/{job_id}").json()["progress"]

    wait_for(lambda: progress()["step"] >= EVERY + 3, 300, "a checkpoint")
    first = progress()["worker"]
    assert first
    # The lease lapses (as if this worker stalled past the TTL) and the task is delivered again,
    # as Redis does after the visibility timeout: the idle trainer takes the job over.
    env.r.delete(f"gdgan:job:{job_id}:lease")
    Celery(broker=env.redis_url).send_task("gdgan.train", args=[job_id], queue="train")

    rec = wait_job(env.stack.cfg.gateway_url, job_id, timeout=600)
    assert rec["status"] == "succeeded", rec
    assert rec["attempts"] == 2 and rec["progress"]["step"] == STEPS
    second = rec["progress"]["worker"]
    assert second and second.split(":")[1] != first.split(":")[1]  # another process finished it

    events = _events(env, job_id)
    writers = [d.get("worker") for e, d in events if e == "progress"]
    takeover = writers.index(second)
    assert first in writers[:takeover]
    assert first not in writers[takeover:], "the first worker kept publishing after losing the lease"
    resumed = [d["step"] for e, d in events if e == "progress" and d.get("worker") == second]
    assert resumed[0] > EVERY  # from the last checkpoint, not from step 0
    # the first worker said why it stopped, and committed nothing after losing the lease
    logs = {
        s.name: s.log.read_text(errors="replace") for s in env.stack.services if s.name.startswith("trainer")
    }
    loser = [name for name, text in logs.items() if f"lost the lease of {job_id}" in text]
    assert len(loser) == 1, {k: [ln for ln in v.splitlines() if "lease" in ln][-6:] for k, v in logs.items()}
    assert "not committing" in logs[loser[0]]
    statuses = [d["status"] for e, d in events if e == "status"]
    assert "cancelled" not in statuses and statuses[-1] == "succeeded"


def test_a_lapsed_lease_nobody_took_over_is_handed_back_not_orphaned(env: Env) -> None:
    """The lease key vanishes with no second delivery (Redis restarted from an append-only file
    older than the last renewal): the worker stops writing as above, then delivers its task again,
    so the job resumes from its checkpoint and ends instead of staying 'running' for ever."""
    ds = make_phantom(PhantomConfig(n=300, size=32, seed=6)).save(env.store)
    job_id = _train_acgan(env, ds.id)
    wait_for(
        lambda: env.api.get(f"/v1/jobs/{job_id}").json()["progress"]["step"] >= EVERY + 3, 300, "a checkpoint"
    )
    env.r.delete(f"gdgan:job:{job_id}:lease")  # and no task is sent: nobody takes the job over
    rec = wait_job(env.stack.cfg.gateway_url, job_id, timeout=600)
    assert rec["status"] == "succeeded", rec
    assert rec["attempts"] == 2 and rec["progress"]["step"] == STEPS
    resumed = [d["step"] for e, d in _events(env, job_id) if e == "progress"]
    first_checkpoint_passed = next(i for i, step in enumerate(resumed) if step >= EVERY + 3)
    assert min(resumed[first_checkpoint_passed:]) > EVERY  # resumed from a checkpoint, not from step 0


def test_missing_local_file_is_500_with_a_logged_traceback(env: Env) -> None:
    ds = make_phantom(PhantomConfig(n=60, size=32, seed=5)).save(env.store)
    Path(env.store.root, "artifacts", ds.id, LABELS_FILE).unlink()
    r = env.api.get(f"/v1/datasets/{ds.id}")
    assert r.status_code == 500, r.text
    assert r.json()["detail"] == "internal error (FileNotFoundError); see the service log"
    gateway = next(s for s in env.stack.services if s.name == "gateway")
    wait_for(lambda: "FileNotFoundError" in gateway.log.read_text(), 10, "the traceback in the log")
    log = gateway.log.read_text()
    assert "Traceback (most recent call last)" in log and LABELS_FILE in log
    # the user's own wrong id is still a 404, not a 500
    assert env.api.get("/v1/datasets/dataset-20260101-0000000000").status_code == 404
