"""A GDGAN the evaluation trains is two parts on the trainers' queue: stage 1 ('gan:gdgan1:rK', at
fan-out), which enqueues stage 2 + bundle ('gan:gdgan:rK', the part whose result is the model).
The halves give the model one uninterrupted training gives; a redelivered stage-1 part neither
retrains nor enqueues its stage 2 twice. Real Redis (broker and job records), a real file store,
real tiny training on a phantom; the task bodies the Celery workers run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.data.splits import patient_split
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.jobs import celery_app, eval_tasks, tasks
from gdgan.jobs.records import JobStore
from gdgan.progress import no_progress
from gdgan.settings import get_settings
from gdgan.store import ArtifactStore, open_store
from gdgan.training.api import train
from gdgan.training.presets import ConfigError
from gdgan.training.sampling import GENERATOR_FILE


def test_fan_out_sends_stage_one_parts_in_the_gan_order() -> None:
    plan = EvaluationPlan(dataset_id="dataset-x", repeats=3, preset="tiny")
    assert eval_tasks.stage1_parts(plan) == ["gan:gdgan1:r0", "gan:gdgan1:r1", "gan:gdgan1:r2"]
    assert eval_tasks.fanout_gans(plan) == [
        "gan:gdgan1:r0",
        "gan:acgan:r0",
        "gan:gdgan1:r1",
        "gan:gdgan1:r2",
        "gan:acgan:r1",
        "gan:acgan:r2",
    ]
    # the parts whose results are the models stay what classifiers and the report read
    assert eval_tasks.eval_parts(plan)[0][:2] == ["gan:gdgan:r0", "gan:acgan:r0"]
    given = EvaluationPlan(dataset_id="dataset-x", repeats=2, preset="tiny", gdgan_model="gdgan-1")
    assert eval_tasks.stage1_parts(given) == []
    assert eval_tasks.fanout_gans(given) == eval_tasks.eval_parts(given)[0]
    assert eval_tasks._gan_queue(given, "gdgan") == celery_app.EVAL_QUEUE  # resolving only
    assert eval_tasks._gan_queue(plan, "gdgan1") == celery_app.TRAIN_QUEUE
    real_only = EvaluationPlan(dataset_id="dataset-x", repeats=2, preset="tiny", strategies=["none"])
    assert eval_tasks.stage1_parts(real_only) == eval_tasks.fanout_gans(real_only) == []


def _stage2_weights(store: ArtifactStore, model_id: str) -> bytes:
    bundle = store.manifest(model_id)
    return store.get_bytes(bundle.meta["stage2"], GENERATOR_FILE)


def test_training_in_two_halves_gives_the_uninterrupted_model(tmp_path: Path) -> None:
    ds = make_phantom(PhantomConfig(n=300, size=32, seed=5))
    idx = patient_split(ds.labels["patient_id"], 0).train
    kw: dict[str, Any] = {"preset": "tiny", "overrides": {"steps": 4}, "train_idx": idx}
    whole_store = open_store((tmp_path / "whole").as_uri())
    whole = train("gdgan", ds, store=whole_store, run_id="r", **kw)
    store = open_store((tmp_path / "halves").as_uri())
    first = train("gdgan", ds, store=store, run_id="r", stop_after="stage1", **kw)
    assert first.status == "succeeded" and set(first.model_ids) == {"stage1"}
    assert [m.kind for m in store.list() if m.kind.startswith("gdgan")] == ["gdgan-stage1"]
    second = train("gdgan", ds, store=store, run_id="r", **kw)
    assert second.model_ids["stage1"] == first.model_id and "stage1" not in second.steps  # not retrained
    assert _stage2_weights(store, second.model_id or "") == _stage2_weights(whole_store, whole.model_id or "")
    with pytest.raises(ConfigError, match="stop_after"):
        train("acgan", ds, store=store, stop_after="stage1", **kw)


@pytest.fixture
def env(
    task_env: tuple[JobStore, ArtifactStore], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[JobStore, ArtifactStore, redis.Redis]:
    monkeypatch.setattr(celery_app, "app", celery_app.make_celery(get_settings()))  # this test's broker
    return (*task_env, redis.Redis.from_url(redis_url))


def _queued_parts(r: redis.Redis, queue: str) -> list[str]:
    """The part argument of every task message waiting in a Celery queue (Redis list)."""
    out = []
    for raw in r.lrange(queue, 0, -1):
        msg = json.loads(raw)
        out.append(msg["headers"]["argsrepr"])
    return out


def test_a_redelivered_stage_one_part_sends_its_stage_two_once(
    env: tuple[JobStore, ArtifactStore, redis.Redis],
) -> None:
    jobs, store, r = env
    ds = make_phantom(PhantomConfig(n=400, size=32, seed=11)).save(store)
    plan = EvaluationPlan(dataset_id=ds.id, repeats=1, preset="tiny", strategies=["none", "gdgan"])
    rec = jobs.create("evaluate", {"plan": plan.model_dump()})
    part = "gan:gdgan1:r0"

    def deliver(name: str) -> None:
        ctx = tasks.JobContext(rec.id, rec.params, no_progress, lambda: False, name)  # type: ignore[arg-type]
        eval_tasks._eval_gan_body(ctx)

    deliver(part)
    first = jobs.part_results(rec.id)[part]
    assert [m.kind for m in store.list() if m.kind.startswith("gdgan")] == ["gdgan-stage1"]
    queued = _queued_parts(r, celery_app.TRAIN_QUEUE)
    assert len(queued) == 1 and "gan:gdgan:r0" in queued[0]
    jobs.r.hdel(f"gdgan:job:{rec.id}:parts", part)  # the worker died before the record
    deliver(part)  # the redelivery: the run's stage 1 is finished, nothing is retrained or resent
    assert jobs.part_results(rec.id)[part]["models"] == first["models"]
    assert [m.kind for m in store.list() if m.kind.startswith("gdgan")] == ["gdgan-stage1"]
    assert len(_queued_parts(r, celery_app.TRAIN_QUEUE)) == 1
    deliver("gan:gdgan:r0")  # what the trainer then runs: stage 2 on the stored stage 1
    model = jobs.part_results(rec.id)["gan:gdgan:r0"]["models"]["gdgan"]
    assert store.manifest(model).meta["stage1"] == first["models"]["gdgan"]
    assert sorted(m.kind for m in store.list() if m.kind.startswith("gdgan")) == [
        "gdgan",
        "gdgan-stage1",
        "gdgan-stage2",
    ]
