"""A redelivered evaluation part (its worker killed, or Redis gone, after the part's commit and
before the job recorded it) finds the artifact its first delivery stored, under an id fixed by the
job and the part, instead of storing a second one. Real Redis, a real file store, a real classifier
trained on a phantom; the task bodies the Celery workers run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.evaluation.experiment import PART_KIND
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.evaluation.sections import SECTION_FILE, SECTION_KIND
from gdgan.jobs import eval_tasks, tasks
from gdgan.jobs.records import JobStore
from gdgan.progress import no_progress
from gdgan.store import ArtifactStore


@pytest.fixture
def env(task_env: tuple[JobStore, ArtifactStore]) -> tuple[JobStore, ArtifactStore]:
    return task_env


def _job(jobs: JobStore, store: ArtifactStore, strategies: list[str]) -> tuple[str, dict[str, Any]]:
    ds = make_phantom(PhantomConfig(n=600, size=32, seed=11)).save(store)
    plan = EvaluationPlan(dataset_id=ds.id, repeats=1, preset="tiny", strategies=strategies)  # type: ignore[arg-type]
    rec = jobs.create("evaluate", {"plan": plan.model_dump()})
    return rec.id, rec.params


def _ctx(job_id: str, params: dict[str, Any], part: str) -> tasks.JobContext:
    return tasks.JobContext(job_id, params, no_progress, lambda: False, part)  # type: ignore[arg-type]


def _lose_the_record(jobs: JobStore, job_id: str, part: str) -> None:
    """What a worker killed (or Redis restarted) between the commit and the record leaves."""
    jobs.r.hdel(f"gdgan:job:{job_id}:parts", part)
    assert part not in jobs.part_results(job_id)


def test_a_redelivered_classifier_part_keeps_its_stored_part(env: tuple[JobStore, ArtifactStore]) -> None:
    jobs, store = env
    job_id, params = _job(jobs, store, ["none", "undersample"])
    part = "clf:none:r0"
    eval_tasks._eval_classifier_body(_ctx(job_id, params, part))  # the first delivery: trains, commits
    first = jobs.part_results(job_id)[part]
    assert first["artifact_id"] == eval_tasks.part_artifact_id(job_id, part)
    _lose_the_record(jobs, job_id, part)
    eval_tasks._eval_classifier_body(_ctx(job_id, params, part))  # the redelivery
    assert [m.id for m in store.list(PART_KIND)] == [first["artifact_id"]]  # no second part
    assert json.dumps(jobs.part_results(job_id)[part], sort_keys=True) == json.dumps(first, sort_keys=True)


def test_a_redelivered_section_part_keeps_its_stored_section(env: tuple[JobStore, ArtifactStore]) -> None:
    """The first delivery's commit, as it left the store (the section's content does not matter:
    computing it is the report's tests'); the redelivered part must not compute and store another."""
    jobs, store = env
    job_id, params = _job(jobs, store, ["none"])
    part = "sec:quality"
    sid = eval_tasks.section_artifact_id(job_id, part)
    with store.writer(SECTION_KIND, sid) as w:
        w.put_bytes(SECTION_FILE, json.dumps({"stored": "by the first delivery"}).encode())
        w.commit(parents=[params["plan"]["dataset_id"]], meta={"section": "quality", "models": {}})
    eval_tasks._eval_section_body(_ctx(job_id, params, part))
    assert [m.id for m in store.list(SECTION_KIND)] == [sid]
    assert jobs.part_results(job_id)[part] == {"artifact_id": sid, "models": {}}


def test_part_ids_are_fixed_by_job_and_part() -> None:
    a, b = "job-evaluate-20261202-0123456789", "job-evaluate-20261202-9876543210"
    assert eval_tasks.part_artifact_id(a, "clf:none:r0") == eval_tasks.part_artifact_id(a, "clf:none:r0")
    ids = {eval_tasks.part_artifact_id(j, p) for j in (a, b) for p in ("clf:none:r0", "clf:gdgan:r0")}
    assert len(ids) == 4
    assert eval_tasks.part_artifact_id(a, "clf:none:r0").startswith("eval-part-20261202-")
    assert eval_tasks.section_artifact_id(a, "sec:quality").startswith("eval-section-20261202-")
