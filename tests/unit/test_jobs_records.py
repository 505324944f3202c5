"""Job records, transitions, cancel, leases and the event stream against a real Redis server."""

from __future__ import annotations

import threading
import time

import pytest
from gdgan.jobs.eval_tasks import eval_parts, section_parts
from gdgan.jobs.records import JobConflict, JobNotFound, JobStore, job_artifact_id
from gdgan.jobs.tasks import human_error
from gdgan.store.base import validate_id


@pytest.fixture
def jobs(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url, ttl_s=60, lease_s=0.5)


def test_create_get_list_newest_first(jobs: JobStore) -> None:
    a = jobs.create("train", {"x": 1})
    time.sleep(0.01)
    b = jobs.create("ingest", {})
    assert jobs.get(a.id).params == {"x": 1} and jobs.get(a.id).status == "queued"
    assert [j.id for j in jobs.list()] == [b.id, a.id]
    assert [j.id for j in jobs.list(job_type="train")] == [a.id]
    with pytest.raises(JobNotFound):
        jobs.get("job-none-20260101-0000000000")


def test_status_transitions_and_timestamps(jobs: JobStore) -> None:
    rec = jobs.create("train", {})
    run = jobs.set_status(rec.id, "running", allowed_from={"queued", "running"})
    assert run is not None and run.started and run.attempts == 1
    jobs.set_progress(
        rec.id, {"phase": "stage1", "step": 3, "total": 10, "fraction": 0.3, "losses": {"g": 1.5}}
    )
    assert jobs.get(rec.id).progress.losses == {"g": 1.5}
    done = jobs.set_status(rec.id, "succeeded", result={"model_id": "m"})
    assert (
        done is not None
        and done.finished
        and done.progress.fraction == 1.0
        and done.result == {"model_id": "m"}
    )
    # a finished job cannot be moved again (redelivered tasks are no-ops)
    assert jobs.set_status(rec.id, "running", allowed_from={"queued", "running"}) is None
    assert jobs.set_status(rec.id, "failed") is None
    jobs.set_progress(rec.id, {"step": 0})  # ignored once terminal
    assert jobs.get(rec.id).progress.step == 10


def test_cancel_queued_is_immediate_running_is_cooperative_finished_is_conflict(jobs: JobStore) -> None:
    q = jobs.create("train", {})
    assert jobs.request_cancel(q.id).status == "cancelled"
    r = jobs.create("train", {})
    jobs.set_status(r.id, "running", allowed_from={"queued"})
    after = jobs.request_cancel(r.id)
    assert after.status == "running" and after.cancel_requested and jobs.cancel_requested(r.id)
    jobs.set_status(r.id, "cancelled")
    with pytest.raises(JobConflict):
        jobs.request_cancel(r.id)


def test_monotonic_progress_for_fan_out(jobs: JobStore) -> None:
    rec = jobs.create("evaluate", {})
    jobs.set_progress(rec.id, {"fraction": 0.5}, monotonic=True)
    jobs.set_progress(rec.id, {"fraction": 0.2}, monotonic=True)
    assert jobs.get(rec.id).progress.fraction == 0.5


def test_lease_is_exclusive_until_it_lapses(jobs: JobStore) -> None:
    assert jobs.acquire_lease("j1", "a")
    assert jobs.acquire_lease("j1", "a")  # re-entrant for its owner
    assert not jobs.acquire_lease("j1", "b")
    assert not jobs.renew_lease("j1", "b")
    assert jobs.renew_lease("j1", "a")
    time.sleep(0.7)  # the owner died: no renewal
    assert jobs.acquire_lease("j1", "b")
    jobs.release_lease("j1", "a")  # not the owner: no effect
    assert jobs.lease_owner("j1") == "b"


def test_events_replay_then_follow_until_terminal(jobs: JobStore) -> None:
    rec = jobs.create("train", {})
    jobs.set_status(rec.id, "running")

    def finish() -> None:
        time.sleep(0.3)
        jobs.set_progress(rec.id, {"step": 1, "total": 2})
        jobs.set_status(rec.id, "succeeded")

    t = threading.Thread(target=finish)
    t.start()
    seen = [(e, d.get("status")) for _, e, d in jobs.events(rec.id, block_ms=200)]
    t.join()
    assert seen[0] == ("status", "queued") and ("status", "running") in seen
    assert ("progress", None) in seen and seen[-1] == ("status", "succeeded")


def test_parts_and_claim_once(jobs: JobStore) -> None:
    rec = jobs.create("evaluate", {})
    assert jobs.put_part_result(rec.id, "clf:none:r0", {"auc": 0.8}) == 1
    assert jobs.put_part_result(rec.id, "clf:none:r0", {"auc": 0.8}) == 1  # idempotent
    assert jobs.part_results(rec.id) == {"clf:none:r0": {"auc": 0.8}}
    assert jobs.claim_once(rec.id, "report") and not jobs.claim_once(rec.id, "report")


def test_a_jobs_artifact_id_is_fixed_by_the_job() -> None:
    """Every delivery of a job names its artifact alike (so a redelivery finds it), jobs and kinds
    differ, and the id has a drawn id's shape: kind, the job's day, 10 hex."""
    job = "job-generate-20261202-0123456789"
    aid = job_artifact_id("synthetic", job)
    assert aid == job_artifact_id("synthetic", job) and validate_id(aid) == aid
    kind, day, tail = aid.rsplit("-", 2)
    assert (kind, day, len(tail)) == ("synthetic", "20261202", 10) and int(tail, 16) >= 0
    assert aid != job_artifact_id("synthetic", "job-generate-20261202-0123456780")
    assert aid != job_artifact_id("report", job).replace("report", "synthetic")


def test_eval_parts_fan_out_shape() -> None:
    from gdgan.evaluation.plan import EvaluationPlan

    plan = EvaluationPlan(dataset_id="dataset-x", repeats=2, preset="tiny")
    gans, clfs = eval_parts(plan)
    # one part per (GAN, split): split 0's first (the report's quality sections wait for them),
    # then every other GDGAN (the longer) before any other ACGAN: the trainers share the parts
    # instead of one trainer taking a whole third split alone
    assert gans == ["gan:gdgan:r0", "gan:acgan:r0", "gan:gdgan:r1", "gan:acgan:r1"]
    three = EvaluationPlan(dataset_id="dataset-x", repeats=3, preset="tiny")
    assert eval_parts(three)[0][2:] == ["gan:gdgan:r1", "gan:gdgan:r2", "gan:acgan:r1", "gan:acgan:r2"]
    assert section_parts() == ["sec:quality", "sec:harness"]
    assert len(clfs) == 10 and "clf:gdgan:r1" in clfs
    only_gdgan = EvaluationPlan(
        dataset_id="dataset-x", repeats=1, preset="tiny", strategies=["none", "gdgan"]
    )
    assert eval_parts(only_gdgan)[0] == ["gan:gdgan:r0"]
    only_real = EvaluationPlan(
        dataset_id="dataset-x", repeats=3, preset="tiny", strategies=["none", "oversample"]
    )
    assert eval_parts(only_real) == ([], [f"clf:{s}:r{r}" for r in range(3) for s in ("none", "oversample")])


def test_gan_parts_of_a_repeat_merge_for_classifiers_and_report() -> None:
    from gdgan.jobs.eval_tasks import _gan_ids, _gan_part

    assert _gan_part("gan:acgan:r12") == ("acgan", 12)
    results = {
        "gan:gdgan:r1": {
            "repeat": 1,
            "split_seed": 7,
            "models": {"gdgan": "m-g"},
            "lineage": {"gdgan": {"ok": 1}},
        },
        "gan:acgan:r1": {
            "repeat": 1,
            "split_seed": 7,
            "models": {"acgan": "m-a"},
            "lineage": {"acgan": {"ok": 1}},
        },
        "gan:acgan:r0": {"repeat": 0, "split_seed": 3, "models": {"acgan": "other"}},
    }
    merged = _gan_ids(results, 1)
    assert merged["models"] == {"gdgan": "m-g", "acgan": "m-a"} and merged["split_seed"] == 7
    assert set(merged["lineage"]) == {"gdgan", "acgan"}
    assert _gan_ids({}, 2) == {"repeat": 2, "models": {}, "lineage": {}, "trained_here": {}}


def test_human_error_is_one_line_without_traceback() -> None:
    try:
        raise ValueError("bad thing\n  File x.py, line 3")
    except ValueError as exc:
        assert human_error(exc) == "ValueError: bad thing"
