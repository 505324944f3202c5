"""Retention of job records and event streams in a real Redis: finished jobs go, running ones stay,
streams stay bounded, and the listing index does not keep ids of records that expired."""

from __future__ import annotations

import time

import pytest
from gdgan.jobs.heartbeat import _redeliver
from gdgan.jobs.records import EXPIRY, INDEX, SIBLINGS, JobNotFound, JobStore, _k
from gdgan.settings import SettingsError, load_settings


def store(redis_url: str, ttl_s: int = 60, maxlen: int = 2000, events_ttl_s: int | None = None) -> JobStore:
    return JobStore.from_url(
        redis_url, ttl_s=ttl_s, lease_s=5, events_maxlen=maxlen, events_ttl_s=events_ttl_s
    )


def touch_every_key(jobs: JobStore, job_id: str) -> None:
    """Write each per-job key the way workers do."""
    jobs.set_progress(job_id, {"step": 1, "total": 10, "fraction": 0.1})
    jobs.put_part_result(job_id, "gan-0", {"model_id": "m"})
    jobs.set_preview(job_id, "stage1", 1, b"\x89PNG")
    jobs.flag_stop(job_id)
    jobs.r.hincrby(_k(job_id, "redeliveries"), "f", 1)


def test_active_job_keys_never_expire_and_finished_ones_get_the_ttl(redis_url: str) -> None:
    jobs = store(redis_url, ttl_s=600)
    rec = jobs.create("train", {})
    jobs.set_status(rec.id, "running", allowed_from={"queued"})
    touch_every_key(jobs, rec.id)
    keys = [_k(rec.id)] + [_k(rec.id, s) for s in SIBLINGS]
    assert [jobs.r.ttl(k) for k in keys] == [-1] * len(keys), "an active job's keys must not expire"

    jobs.set_status(rec.id, "succeeded")
    ttls = [jobs.r.ttl(k) for k in keys]
    assert all(590 <= t <= 600 for t in ttls), dict(zip(keys, ttls))
    assert jobs.r.zscore(EXPIRY, rec.id) is not None

    # writes after the end (the last status event, a late part) keep the record's lifetime
    jobs.publish(rec.id, "note", {"late": True})
    jobs.set_preview(rec.id, "stage1", 2, b"\x89PNG")
    jobs.put_part_result(rec.id, "gan-1", {})
    assert all(0 < jobs.r.ttl(k) <= 600 for k in keys)


def test_a_running_job_outlives_the_ttl_and_a_finished_one_expires(redis_url: str) -> None:
    jobs = store(redis_url, ttl_s=1)
    running = jobs.create("train", {})
    jobs.set_status(running.id, "running", allowed_from={"queued"})
    done = jobs.create("ingest", {})
    jobs.set_status(done.id, "running", allowed_from={"queued"})
    touch_every_key(jobs, done.id)
    jobs.set_status(done.id, "failed", error="boom")
    time.sleep(1.3)

    assert jobs.get(running.id).status == "running"
    assert jobs.r.exists(_k(running.id, "events"))
    with pytest.raises(JobNotFound):
        jobs.get(done.id)
    assert not any(jobs.r.exists(_k(done.id, s)) for s in SIBLINGS)

    # the index entry goes too, at the next create (no listing needed)
    assert jobs.r.zscore(INDEX, done.id) is not None
    jobs.create("ingest", {})
    assert jobs.r.zscore(INDEX, done.id) is None and jobs.r.zscore(EXPIRY, done.id) is None
    assert jobs.r.zscore(INDEX, running.id) is not None


def test_a_finished_jobs_event_stream_goes_sooner_than_its_record(redis_url: str) -> None:
    jobs = store(redis_url, ttl_s=600, events_ttl_s=60)
    rec = jobs.create("train", {})
    jobs.set_status(rec.id, "running", allowed_from={"queued"})
    jobs.publish(rec.id, "progress", {"step": 1})
    assert jobs.r.ttl(_k(rec.id, "events")) == -1
    jobs.set_status(rec.id, "succeeded")
    assert 590 <= jobs.r.ttl(_k(rec.id)) <= 600
    assert 50 <= jobs.r.ttl(_k(rec.id, "events")) <= 60
    jobs.publish(rec.id, "note", {})  # a late event keeps the shorter lifetime
    assert 50 <= jobs.r.ttl(_k(rec.id, "events")) <= 60
    # never longer than the record's
    assert store(redis_url, ttl_s=30, events_ttl_s=3600).events_ttl_s == 30


def test_a_job_written_with_a_ttl_loses_it_when_it_runs(redis_url: str) -> None:
    """Records stored by the old code carried the TTL while queued; the next update clears it."""
    jobs = store(redis_url, ttl_s=600)
    rec = jobs.create("train", {})
    jobs.r.expire(_k(rec.id), 5)
    jobs.set_status(rec.id, "running", allowed_from={"queued"})
    assert jobs.r.ttl(_k(rec.id)) == -1


def test_event_stream_length_is_bounded(redis_url: str) -> None:
    maxlen = 50
    jobs = store(redis_url, maxlen=maxlen)
    rec = jobs.create("train", {})
    for i in range(1000):
        jobs.publish(rec.id, "progress", {"step": i})
    node = int(jobs.r.config_get("stream-node-max-entries")["stream-node-max-entries"])
    n = jobs.r.xlen(_k(rec.id, "events"))
    # approximate trimming removes whole nodes: at most one node over the cap, never under it
    assert maxlen <= n <= maxlen + node, n
    last = jobs.r.xrevrange(_k(rec.id, "events"), count=1)[0][1]
    assert last["data"] == '{"step": 999}'


def test_redelivery_counter_ends_with_the_record(redis_url: str) -> None:
    """The reaper's counter of a job goes with its record, not on a clock of its own."""
    from gdgan.settings import get_settings

    jobs = store(redis_url, ttl_s=600)
    rec = jobs.create("train", {})
    jobs.set_status(rec.id, "running", allowed_from={"queued"})
    s = get_settings().model_copy(update={"job_max_redeliveries": 0})
    entry = {"job_id": rec.id, "task": "gdgan.train", "args": [rec.id], "worker": "h:1", "task_id": "t"}
    _redeliver(jobs.r, jobs, s, f"{rec.id}|gdgan.train|", entry)  # over the limit: fails the job
    assert jobs.get(rec.id).status == "failed"
    assert 0 < jobs.r.ttl(_k(rec.id, "redeliveries")) <= 600


def test_retention_settings_are_typed() -> None:
    assert load_settings({"GDGAN_JOB_EVENTS_MAXLEN": "500"}).job_events_maxlen == 500
    assert load_settings({"GDGAN_JOB_EVENTS_TTL_S": "120"}).job_events_ttl_s == 120
    with pytest.raises(SettingsError, match="GDGAN_JOB_EVENTS_MAXLEN"):
        load_settings({"GDGAN_JOB_EVENTS_MAXLEN": "3"})
    with pytest.raises(SettingsError, match="GDGAN_JOB_TTL_S"):
        load_settings({"GDGAN_JOB_TTL_S": "0"})
