"""The per-queue lists of running tasks that autoscalers read (``gdgan:active:<queue>``), on a real
Redis: one element per running task, kept with the registry, orphans dropped by the reaper scan."""

from __future__ import annotations

import time

import pytest
import redis
from gdgan.jobs import heartbeat as hb
from gdgan.jobs.celery_app import EVAL_QUEUE, TRAIN_QUEUE


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def entry(job_id: str, task: str, worker: str, task_id: str, queue: str | None) -> dict:
    return {"job_id": job_id, "part": None, "task": task, "args": [job_id], "queue": queue,
            "worker": worker, "node": worker, "task_id": task_id, "t": time.time()}  # fmt: skip


def active(r: redis.Redis, queue: str) -> list[str]:
    return r.lrange(hb.active_key(queue), 0, -1)


def test_one_element_per_running_task_removed_with_its_registry_entry(r: redis.Redis) -> None:
    a = entry("job-train-1", "gdgan.train", "w:1", "t1", TRAIN_QUEUE)
    assert hb.register(r, a)
    field = hb.entry_field("job-train-1", "gdgan.train", None)
    assert active(r, TRAIN_QUEUE) == [field]
    # the dead owner's task taken over by another worker: still one running task
    assert hb.register(r, {**a, "worker": "w:2", "task_id": "t2"})
    assert active(r, TRAIN_QUEUE) == [field]
    hb.unregister(r, field, "t1")  # a stale owner cannot remove the new owner's entry
    assert active(r, TRAIN_QUEUE) == [field]
    hb.unregister(r, field, "t2")
    assert active(r, TRAIN_QUEUE) == [] and not r.hexists(hb.RUNNING, field)


def test_the_queue_comes_from_the_task_route_when_the_delivery_has_none(r: redis.Redis) -> None:
    assert hb.register(r, entry("job-evaluate-1", "gdgan.evaluate", "w:1", "t1", None))
    assert active(r, EVAL_QUEUE) == [hb.entry_field("job-evaluate-1", "gdgan.evaluate", None)]
    assert active(r, TRAIN_QUEUE) == []


def test_the_reaper_scan_drops_orphans_and_keeps_running_tasks(r: redis.Redis, redis_url: str) -> None:
    from gdgan.jobs.records import JobStore
    from gdgan.settings import get_settings

    hb.register(r, entry("job-train-2", "gdgan.train", "w:3", "t3", TRAIN_QUEUE))
    r.set(hb.worker_key("w:3"), "{}", ex=60)  # its worker is alive
    r.rpush(hb.active_key(TRAIN_QUEUE), "job-train-gone|gdgan.train|")  # e.g. Redis lost the hash write
    hb.reap_once(r, JobStore(r, ttl_s=60), get_settings())
    assert active(r, TRAIN_QUEUE) == [hb.entry_field("job-train-2", "gdgan.train", None)]
