"""Crash recovery: a trainer worker killed with SIGKILL mid-training. Redis redelivers the
unacknowledged task after the (short, for the test) visibility timeout to a fresh worker, which
resumes from the last checkpoint; the job ends ``succeeded`` having lost at most one checkpoint
interval of steps."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import httpx
import pytest
from gdgan.localstack.stack import Service, Stack
from svcstack import redis_stack, sse, wait_for

pytestmark = pytest.mark.integration

STEPS, EVERY = 60, 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("svc-crash")
    env = {"GDGAN_VISIBILITY_TIMEOUT_S": "3", "GDGAN_JOB_LEASE_S": "2"}
    with redis_stack(home, env=env, evaluators=0) as s:
        yield s


def test_sigkill_trainer_resumes_from_checkpoint(stack: Stack) -> None:
    url = stack.cfg.gateway_url
    api = httpx.Client(base_url=url, timeout=60)
    r = api.post("/v1/datasets", json={"source": "phantom", "n": 400, "size": 32, "seed": 1})
    ds = r.json()["dataset_id"]
    wait_for(
        lambda: api.get(f"/v1/jobs/{r.json()['job_id']}").json()["status"] == "succeeded", 120, "dataset"
    )
    job_id = api.post(
        "/v1/jobs/train",
        json={
            "dataset_id": ds,
            "model": "acgan",
            "preset": "tiny",
            "overrides": {"steps": STEPS, "checkpoint_every": EVERY},
        },
    ).json()["job_id"]

    events: list[tuple[str, dict]] = []
    reader = threading.Thread(target=lambda: events.extend(sse(url, job_id, timeout=600)), daemon=True)
    reader.start()

    # kill the worker (the whole process, no warning) once a checkpoint has surely been written
    def step() -> int:
        return int(api.get(f"/v1/jobs/{job_id}").json()["progress"]["step"])

    wait_for(lambda: step() >= 2 * EVERY + 2, 300, "two checkpoints")
    trainer = next(s for s in stack.services if s.name == "trainer-0")
    assert trainer.proc is not None
    step_at_kill = api.get(f"/v1/jobs/{job_id}").json()["progress"]["step"]
    os.kill(trainer.proc.pid, signal.SIGKILL)
    trainer.proc.wait(10)
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "running"

    # a fresh worker: the message comes back after the visibility timeout
    fresh = Service("trainer-1", trainer.cmd, stack.logs / "trainer-1.log")
    fresh.start(stack.env, stack.home)
    stack.services.append(fresh)
    reader.join(timeout=400)
    assert not reader.is_alive(), "the job did not finish after the restart"

    rec = api.get(f"/v1/jobs/{job_id}").json()
    assert rec["status"] == "succeeded", rec
    assert rec["attempts"] == 2
    # progress after the restart starts from the checkpoint, not from step 0
    # the SSE stream began with a "job" snapshot (running); the resume publishes "running" again
    running_idx = [i for i, (e, d) in enumerate(events) if e == "status" and d.get("status") == "running"]
    assert running_idx, [e for e in events if e[0] in ("job", "status")]
    before = [d["step"] for e, d in events[: running_idx[-1]] if e == "progress"]
    trace = [(e, d.get("status", d.get("step"))) for e, d in events]
    assert before and max(before) >= 2 * EVERY, (step_at_kill, trace)
    resumed = [d["step"] for e, d in events[running_idx[-1] :] if e == "progress"]
    assert resumed, "no progress after the restart"
    assert resumed[0] >= step_at_kill - EVERY - 2, (resumed[:3], step_at_kill)
    assert resumed[0] > EVERY  # not a restart from step 0
    assert resumed[-1] == STEPS
