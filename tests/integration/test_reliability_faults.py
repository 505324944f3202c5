"""Workers that hang rather than die, time limits, and the supervisor's liveness probe.

One stack (real Redis with AOF, a real SeaweedFS S3 store, gateway, generator, a trainer and an
evaluator) supervised by ``Stack.watch()`` (the same pass ``gdgan up`` runs), with short liveness
settings: 1 s heartbeats, a worker gone after 5 s, a task hung after 4 s without any change of its
main thread's stack.

- A hang that is real, not simulated: the S3 server is frozen (SIGSTOP) while a training job writes
  a checkpoint, so the trainer's main thread blocks in a socket read. The watchdog notices, records
  why and ends the worker; the supervisor restarts it; the task is redelivered with a ``stalled``
  event naming the hang; once S3 is thawed the job resumes from its checkpoint and succeeds.
- A soft time limit interrupts a long task and its job fails with a reason that names the setting.
- A worker frozen as a whole (SIGSTOP: no heartbeat at all) is killed and restarted by the supervisor.
- A worker stopped with SIGTERM (Kubernetes scaling it down) checkpoints its training at the
  current step, puts the job back in the queue and exits; the job resumes at that step.
- The S3 server down for longer than ``GDGAN_S3_RETRY_BUDGET_S`` fails the job that needed it, with
  a reason naming the store and the setting, and leaves no artifact visible.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gdgan.localstack.servers import RedisServer, SeaweedS3Server
from gdgan.localstack.stack import Service, Stack
from svcstack import running, sse, start_stack, wait_for, wait_job

pytestmark = pytest.mark.integration

LIVENESS = {
    "GDGAN_WORKER_HEARTBEAT_S": "1",
    "GDGAN_WORKER_DEAD_AFTER_S": "5",
    "GDGAN_JOB_HANG_TIMEOUT_S": "4",
    "GDGAN_JOB_MAX_REDELIVERIES": "3",
    # a store outage longer than 5 s fails the job (the chaos matrix has the shorter restarts);
    # pauses between attempts stay under the 4 s hang timeout
    "GDGAN_S3_RETRY_BUDGET_S": "5",
    "GDGAN_S3_RETRY_BACKOFF_MAX_S": "1",
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    server = SeaweedS3Server(dir=tmp_path_factory.mktemp("faults-s3"), die_with_parent=True)
    server.start(timeout=90)
    server.make_bucket("gdgan")
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, s3: SeaweedS3Server) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("faults")
    with (
        RedisServer(dir=home / "redis", persist=True, die_with_parent=True) as redis,
        running(start_stack(home, redis_url=redis.url, env={**s3.env("gdgan"), **LIVENESS}), watch=0.3) as s,
    ):
        yield s


@pytest.fixture(scope="module")
def dataset(stack: Stack) -> str:
    api = httpx.Client(base_url=stack.cfg.gateway_url, timeout=60)
    r = api.post("/v1/datasets", json={"source": "phantom", "n": 300, "size": 32, "seed": 3}).json()
    assert wait_job(stack.cfg.gateway_url, r["job_id"], 240)["status"] == "succeeded"
    return r["dataset_id"]


def _svc(stack: Stack, name: str) -> Service:
    return next(s for s in stack.services if s.name == name)


def _train(stack: Stack, dataset: str, steps: int, every: int = 10) -> str:
    body = {
        "dataset_id": dataset,
        "model": "acgan",
        "preset": "tiny",
        "overrides": {"steps": steps, "checkpoint_every": every},
    }
    r = httpx.post(f"{stack.cfg.gateway_url}/v1/jobs/train", json=body, timeout=60)
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def _rec(stack: Stack, job_id: str) -> dict[str, Any]:
    return httpx.get(f"{stack.cfg.gateway_url}/v1/jobs/{job_id}", timeout=30).json()


def _restarted(stack: Stack, name: str, before: int) -> None:
    svc = _svc(stack, name)
    wait_for(lambda: svc.restarts > before and svc.alive, 60, f"{name} restarted")


def test_worker_hung_on_a_frozen_store_is_restarted_and_its_job_redelivered(
    stack: Stack, dataset: str, s3: SeaweedS3Server
) -> None:
    url = stack.cfg.gateway_url
    trainer = _svc(stack, "trainer-0")
    restarts = trainer.restarts
    job_id = _train(stack, dataset, steps=120)
    events: list[tuple[str, dict]] = []
    reader = threading.Thread(target=lambda: events.extend(sse(url, job_id, timeout=600)), daemon=True)
    reader.start()
    wait_for(lambda: _rec(stack, job_id)["progress"]["step"] >= 22, 300, "two checkpoints")
    assert s3.proc is not None
    os.kill(s3.proc.pid, signal.SIGSTOP)  # the next checkpoint write blocks in a socket read
    try:
        wait_for(lambda: any(e == "stalled" for e, _ in events), 120, "the hang to be detected")
    finally:
        os.kill(s3.proc.pid, signal.SIGCONT)
    _restarted(stack, "trainer-0", restarts)
    reader.join(600)
    assert not reader.is_alive()
    final = _rec(stack, job_id)
    assert final["status"] == "succeeded", final
    assert final["attempts"] >= 2
    stalled = [d for e, d in events if e == "stalled"]
    assert "hung: no progress for" in stalled[0]["reason"], stalled
    assert "GDGAN_JOB_HANG_TIMEOUT_S" in stalled[0]["reason"]
    cut = next(i for i, (e, _) in enumerate(events) if e == "stalled")
    at_stall = max(d["step"] for e, d in events[:cut] if e == "progress" and "step" in d)
    resumed = [d["step"] for e, d in events[cut:] if e == "progress" and "step" in d]
    assert resumed and resumed[0] >= at_stall - 10 - 2, (at_stall, resumed[:3])  # one interval lost at most
    steps = [d["step"] for e, d in events if e == "progress" and "step" in d]
    assert steps[-1] == 120


def test_whole_worker_frozen_is_killed_by_the_liveness_probe(stack: Stack) -> None:
    ev = _svc(stack, "evaluator-0")
    before, pid = ev.restarts, ev.proc.pid if ev.proc else 0
    os.kill(pid, signal.SIGSTOP)  # no heartbeat at all, but the process exists
    try:
        _restarted(stack, "evaluator-0", before)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert ev.proc is not None and ev.proc.pid != pid
    assert ev.last_exit == -signal.SIGKILL


def test_soft_time_limit_fails_the_job_with_the_reason(stack: Stack, dataset: str) -> None:
    trainer = _svc(stack, "trainer-0")
    normal = dict(trainer.env)
    trainer.env = {**normal, "GDGAN_TASK_SOFT_TIME_LIMIT_S": "8", "GDGAN_TASK_TIME_LIMIT_S": "120"}
    before = trainer.restarts
    assert trainer.proc is not None
    os.kill(trainer.proc.pid, signal.SIGKILL)  # comes back with the limit
    _restarted(stack, "trainer-0", before)
    try:
        job_id = _train(stack, dataset, steps=100_000, every=1000)
        final = wait_job(stack.cfg.gateway_url, job_id, 300)
        assert final["status"] == "failed", final
        assert final["error"].startswith("SoftTimeLimitExceeded: soft time limit (8 s"), final["error"]
        assert "GDGAN_TASK_SOFT_TIME_LIMIT_S" in final["error"]
        assert final["progress"]["step"] < 100_000
    finally:
        trainer.env = normal
        before = trainer.restarts
        if trainer.proc is not None and trainer.alive:
            os.kill(trainer.proc.pid, signal.SIGKILL)
            _restarted(stack, "trainer-0", before)


def test_with_every_worker_gone_the_gateway_requeues_the_job(stack: Stack, dataset: str) -> None:
    """No worker left to reap: the gateway's reaper takes the job out of ``running`` (back to
    ``queued``, with a ``stalled`` event); when workers return, the job resumes and succeeds."""
    url = stack.cfg.gateway_url
    job_id = _train(stack, dataset, steps=80)
    wait_for(lambda: _rec(stack, job_id)["progress"]["step"] >= 12, 300, "a checkpoint")
    stack.cfg.restart = False  # the supervisor stands by: nothing comes back
    workers = [_svc(stack, "trainer-0"), _svc(stack, "evaluator-0")]
    try:
        for w in workers:
            assert w.proc is not None
            os.kill(w.proc.pid, signal.SIGKILL)
            w.proc.wait(10)
        rec = wait_for(lambda: (x := _rec(stack, job_id))["status"] == "queued" and x, 60, "the job requeued")
        assert "stopped sending heartbeats" in rec["progress"]["message"], rec
        assert rec["running_on"] == [] and not rec["stalled"]
    finally:
        before = {w.name: w.restarts for w in workers}
        stack.cfg.restart = True
    for w in workers:
        _restarted(stack, w.name, before[w.name])
    final = wait_job(url, job_id, 300)
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2


def test_a_store_outage_longer_than_the_budget_fails_the_job_naming_it(
    stack: Stack, dataset: str, s3: SeaweedS3Server
) -> None:
    from gdgan.store.s3 import S3Store

    url = stack.cfg.gateway_url
    store = S3Store("gdgan", s3.endpoint, s3.access_key, s3.secret_key, cache_dir=stack.home / "verify")
    before = {m.id for m in store.list()}
    job_id = _train(stack, dataset, steps=400)
    wait_for(lambda: _rec(stack, job_id)["progress"]["step"] >= 12, 300, "a checkpoint")
    assert s3.proc is not None
    os.kill(s3.proc.pid, signal.SIGKILL)  # not supervised here: it stays down until started below
    s3.proc.wait(10)
    s3._close_log()
    s3.proc = None
    try:
        final = wait_job(url, job_id, 300)
    finally:
        s3.start(timeout=90)
    assert final["status"] == "failed", final
    assert "StoreUnavailable" in final["error"] and s3.endpoint in final["error"], final["error"]
    assert "gave up after 5 s (GDGAN_S3_RETRY_BUDGET_S)" in final["error"], final["error"]
    assert final["progress"]["step"] < 400
    new = [m for m in store.list() if m.id not in before]
    assert not [m.kind for m in new if m.kind.startswith("acgan")], new  # no model registered
    for m in new:  # checkpoints of the steps before the outage: each complete
        for name in m.files:
            store.get_bytes(m.id, name)


def test_a_worker_stopped_with_sigterm_checkpoints_and_its_job_resumes_there(
    stack: Stack, dataset: str
) -> None:
    """What a pod deletion does (scale-down, rollout, node drain): SIGTERM, Celery's warm shutdown.
    No periodic checkpoint falls inside this run (every 1000 steps), so resuming anywhere but at the
    step the worker stopped means the shutdown wrote no checkpoint of its own."""
    url = stack.cfg.gateway_url
    trainer = _svc(stack, "trainer-0")
    restarts = trainer.restarts
    job_id = _train(stack, dataset, steps=200, every=1000)
    events: list[tuple[str, dict]] = []
    reader = threading.Thread(target=lambda: events.extend(sse(url, job_id, timeout=600)), daemon=True)
    reader.start()
    wait_for(lambda: _rec(stack, job_id)["progress"]["step"] >= 15, 300, "training under way")
    assert trainer.proc is not None
    os.kill(trainer.proc.pid, signal.SIGTERM)
    trainer.proc.wait(120)  # it stops at its next step, not at the end of the run
    assert trainer.proc.returncode == 0, trainer.proc.returncode  # a clean exit, not a kill
    _restarted(stack, "trainer-0", restarts)
    reader.join(600)
    final = _rec(stack, job_id)
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2
    names = [e for e, _ in events]
    assert "requeued" in names and "stalled" not in names, names  # handed back, not reaped
    (requeued,) = [d for e, d in events if e == "requeued"]
    assert "shutting down (SIGTERM" in requeued["reason"], requeued
    cut = names.index("requeued")
    steps = [d["step"] for e, d in events if e == "progress" and "step" in d]
    stopped = max(d["step"] for e, d in events[:cut] if e == "progress" and "step" in d)
    resumed = [d["step"] for e, d in events[cut:] if e == "progress" and "step" in d]
    assert stopped < 200 and resumed and resumed[0] >= stopped, (stopped, resumed[:3])
    assert steps[-1] == 200
