"""The heartbeat registry, the live view of a job and the reaper's give-up path, on a real Redis.

The redelivery path (a task sent again to a live worker) needs a Celery worker and is covered by
tests/integration/test_reliability_*.py."""

from __future__ import annotations

import json
import time

import pytest
import redis
from gdgan.jobs import heartbeat as hb
from gdgan.jobs.records import JobStore
from gdgan.settings import load_settings


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def jobs(r: redis.Redis) -> JobStore:
    return JobStore(r, ttl_s=3600)


def _entry(
    job_id: str, worker: str, task_id: str = "t1", age_s: float = 0.0, part: str | None = None
) -> dict:
    return {
        "job_id": job_id,
        "part": part,
        "task": "gdgan.train",
        "args": [job_id],
        "queue": "train",
        "worker": worker,
        "node": f"trainer-{worker}@h",
        "task_id": task_id,
        "t": time.time() - age_s,
    }


def _beat(r: redis.Redis, worker: str) -> None:
    r.set(hb.worker_key(worker), json.dumps({"id": worker, "node": worker, "t": time.time()}), ex=30)


def test_a_live_owner_keeps_its_entry_a_dead_one_is_taken_over(r: redis.Redis) -> None:
    _beat(r, "h:1")
    assert hb.register(r, _entry("job-a", "h:1", "t1"))
    # a duplicate delivery on another worker while h:1 beats: not registered
    assert not hb.register(r, _entry("job-a", "h:2", "t2"))
    assert hb.running_entries(r)["job-a|gdgan.train|"]["worker"] == "h:1"
    r.delete(hb.worker_key("h:1"))  # h:1 is gone
    assert hb.register(r, _entry("job-a", "h:2", "t2"))
    # the old task's late postrun must not remove the new owner's entry
    hb.unregister(r, "job-a|gdgan.train|", "t1")
    assert hb.running_entries(r)["job-a|gdgan.train|"]["task_id"] == "t2"
    hb.unregister(r, "job-a|gdgan.train|", "t2")
    assert hb.running_entries(r) == {}


def test_annotate_shows_the_heartbeat_age_and_stalled(r: redis.Redis, jobs: JobStore) -> None:
    s = load_settings({"GDGAN_WORKER_DEAD_AFTER_S": "10", "GDGAN_WORKER_HEARTBEAT_S": "1"})
    rec = jobs.create("train", {})
    jobs.set_status(rec.id, "running")
    _beat(r, "h:1")
    hb.register(r, _entry(rec.id, "h:1"))
    live = hb.annotate(r, jobs.get(rec.id), s)
    assert not live.stalled and live.running_on[0].heartbeat_age_s is not None
    assert live.running_on[0].worker == "trainer-h:1@h"
    # three beats missed (1 s each): stalled already, though not yet declared dead (10 s)
    r.set(hb.worker_key("h:1"), json.dumps({"id": "h:1", "t": time.time() - 4}), ex=30)
    late = hb.annotate(r, jobs.get(rec.id), s)
    assert late.stalled and late.running_on[0].heartbeat_age_s >= 4
    r.delete(hb.worker_key("h:1"))
    gone = hb.annotate(r, jobs.get(rec.id), s)
    assert gone.stalled and gone.running_on[0].heartbeat_age_s is None


def test_reaper_fails_the_job_naming_the_fault_once_redeliveries_run_out(
    r: redis.Redis, jobs: JobStore
) -> None:
    s = load_settings({"GDGAN_JOB_MAX_REDELIVERIES": "0", "GDGAN_WORKER_DEAD_AFTER_S": "10"})
    rec = jobs.create("train", {})
    jobs.set_status(rec.id, "running")
    hb.register(r, _entry(rec.id, "h:9", age_s=60))  # its worker never beats: gone
    assert hb.reap_once(r, jobs, s) == [f"{rec.id}|gdgan.train|"]
    done = jobs.get(rec.id)
    assert done.status == "failed"
    assert "worker trainer-h:9@h stopped sending heartbeats" in (done.error or "")
    assert "GDGAN_JOB_MAX_REDELIVERIES=0" in (done.error or "")
    assert hb.running_entries(r) == {}
    # a second reaper pass (another worker) finds nothing to do
    assert hb.reap_once(r, jobs, s) == []


def test_reaper_leaves_fresh_and_live_entries_alone(r: redis.Redis, jobs: JobStore) -> None:
    s = load_settings({"GDGAN_JOB_MAX_REDELIVERIES": "0", "GDGAN_WORKER_DEAD_AFTER_S": "10"})
    a, b = jobs.create("train", {}), jobs.create("train", {})
    for x in (a, b):
        jobs.set_status(x.id, "running")
    _beat(r, "h:1")
    hb.register(r, _entry(a.id, "h:1", age_s=60))  # old but its worker beats
    hb.register(r, _entry(b.id, "h:2", age_s=1))  # no beat yet, but registered a moment ago
    assert hb.reap_once(r, jobs, s) == []
    assert jobs.get(a.id).status == jobs.get(b.id).status == "running"


def test_a_hang_fault_is_quoted_and_a_finished_job_is_only_cleaned_up(r: redis.Redis, jobs: JobStore) -> None:
    s = load_settings({"GDGAN_JOB_MAX_REDELIVERIES": "0", "GDGAN_WORKER_DEAD_AFTER_S": "10"})
    hung, done = jobs.create("train", {}), jobs.create("train", {})
    jobs.set_status(hung.id, "running")
    jobs.set_status(done.id, "running")
    jobs.set_status(done.id, "succeeded")
    _beat(r, "h:1")
    hb.register(r, _entry(hung.id, "h:1", age_s=1))
    hb.mark_fault(r, f"{hung.id}|gdgan.train|", "t1", "worker X hung: no progress for 3 s")
    hb.register(r, _entry(done.id, "h:7", age_s=60))
    assert sorted(hb.reap_once(r, jobs, s)) == sorted([f"{hung.id}|gdgan.train|", f"{done.id}|gdgan.train|"])
    assert "worker X hung: no progress for 3 s" in (jobs.get(hung.id).error or "")
    assert jobs.get(done.id).status == "succeeded" and jobs.get(done.id).error is None


def test_stack_signature_changes_while_a_thread_works_and_not_while_it_blocks() -> None:
    import threading

    ev, stop = threading.Event(), threading.Event()

    def blocked() -> None:
        ev.wait()

    def busy() -> None:
        x = 0
        while not stop.is_set():
            x = (x + 1) % 7

    t1, t2 = threading.Thread(target=blocked), threading.Thread(target=busy)
    t1.start()
    t2.start()
    try:
        time.sleep(0.1)
        blocked_sigs, busy_sigs = set(), set()
        for _ in range(20):
            blocked_sigs.add(hb._stack_signature(t1.ident or 0))
            busy_sigs.add(hb._stack_signature(t2.ident or 0))
            time.sleep(0.01)
        assert len(blocked_sigs) == 1
        assert len(busy_sigs) > 1
    finally:
        ev.set()
        stop.set()
        t1.join()
        t2.join()


def test_settings_reject_inconsistent_liveness_values() -> None:
    from gdgan.settings import SettingsError

    with pytest.raises(SettingsError, match="GDGAN_WORKER_DEAD_AFTER_S"):
        load_settings({"GDGAN_WORKER_HEARTBEAT_S": "10", "GDGAN_WORKER_DEAD_AFTER_S": "10"})
    with pytest.raises(SettingsError, match="GDGAN_TASK_TIME_LIMIT_S"):
        load_settings({"GDGAN_TASK_SOFT_TIME_LIMIT_S": "100", "GDGAN_TASK_TIME_LIMIT_S": "50"})


def test_redelivery_breaks_only_the_dead_workers_leases(r: redis.Redis, jobs: JobStore) -> None:
    rec = jobs.create("evaluate", {})
    assert jobs.acquire_lease(rec.id, "h:9:task-a")
    assert jobs.acquire_lease(f"{rec.id}:clf:none:r0", "h:9:task-b")
    assert jobs.acquire_lease(f"{rec.id}:clf:none:r1", "h:10:task-c")
    hb._break_leases(jobs, _entry(rec.id, "h:9", part="clf:none:r0"))
    assert jobs.lease_owner(rec.id) is None  # the dead worker's
    assert jobs.lease_owner(f"{rec.id}:clf:none:r0") is None
    assert jobs.lease_owner(f"{rec.id}:clf:none:r1") == "h:10:task-c"  # another worker's: kept


WATCHED_TASK = """
import signal, sys, time
from gdgan.jobs import heartbeat as hb
from gdgan.settings import get_settings

class Task:
    name = "gdgan.train"
    class request:
        delivery_info = {"routing_key": "train"}

m = hb.Monitor(get_settings(), "trainer-test@h")
signal.signal(hb.SOFT_LIMIT_SIGNAL, hb._raise_soft_limit)
m.task_started(Task, "task-1", (sys.argv[1],))
m.start()
if sys.argv[2] == "stuck":  # a main thread that never unwinds: the soft signal stays pending
    signal.pthread_sigmask(signal.SIG_BLOCK, {hb.SOFT_LIMIT_SIGNAL})
try:
    time.sleep(60)
except hb.SoftTimeLimitExceeded as exc:
    print("interrupted:", exc)
"""


@pytest.mark.parametrize("mode", ["interruptible", "stuck"])
def test_time_limits_in_a_real_process(redis_url: str, jobs: JobStore, tmp_path, mode: str) -> None:
    """Soft limit: the task's main thread gets SoftTimeLimitExceeded. Hard limit (the main thread did
    not unwind): the job fails with the reason and the process is SIGKILLed."""
    import os
    import subprocess
    import sys

    rec = jobs.create("train", {})
    jobs.set_status(rec.id, "running")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    env.update(
        {
            "GDGAN_REDIS_URL": redis_url,
            "GDGAN_DATA_DIR": str(tmp_path),
            "GDGAN_WORKER_HEARTBEAT_S": "0.2",
            "GDGAN_WORKER_DEAD_AFTER_S": "5",
            "GDGAN_TASK_SOFT_TIME_LIMIT_S": "1",
            "GDGAN_TASK_TIME_LIMIT_S": "2",
        }
    )
    script = tmp_path / "task.py"
    script.write_text(WATCHED_TASK)
    out = subprocess.run(
        [sys.executable, str(script), rec.id, mode], env=env, capture_output=True, text=True, timeout=60
    )
    if mode == "interruptible":
        assert out.returncode == 0, out.stderr
        assert "interrupted: soft time limit (1 s, GDGAN_TASK_SOFT_TIME_LIMIT_S) exceeded" in out.stdout
        assert jobs.get(rec.id).status == "running"  # run_job, not the watchdog, records this failure
    else:
        assert out.returncode == -9, (out.returncode, out.stderr[-2000:])
        done = jobs.get(rec.id)
        assert done.status == "failed"
        assert (done.error or "").startswith(
            "TimeLimitExceeded: hard time limit (2 s, GDGAN_TASK_TIME_LIMIT_S)"
        )
