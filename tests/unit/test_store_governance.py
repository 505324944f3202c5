"""Data governance on a real S3 server (SeaweedFS) and a local folder: deleting a dataset removes
exactly what derives from it (the expectation is taken independently: every artifact created after
a snapshot of an unrelated dataset's lineage), children before parents, with no half-visible
artifact after a crash mid-way, finished by a rerun; a job that uses any of it blocks the delete;
``collect_garbage`` removes old partial uploads and expired step checkpoints, nothing else."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import torch
from gdgan.data.dataset import load_dataset
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.imageset import write_synthetic_set
from gdgan.schemas import JobRecord
from gdgan.store import ArtifactNotFound, ArtifactStore
from gdgan.store.governance import (
    DatasetInUse,
    collect_garbage,
    delete_with_lineage,
    execute_deletion,
    plan_deletion,
)
from gdgan.training.api import train
from gdgan.training.sampling import load_generator

FAST = {"steps": "2", "checkpoint_every": "1", "batch_size": "8", "ngf": "8", "ndf": "8"}


def _dataset(store: ArtifactStore, seed: int) -> str:
    ds = make_phantom(PhantomConfig(n=60, size=32, seed=seed, prevalence={"Cardiomegaly": 0.3}))
    ds.save(store)
    return str(ds.id)


def _lineage(store: ArtifactStore, ds_id: str, tag: str) -> dict[str, Any]:
    """A finished GDGAN run (stage 1, stage 2, bundle, run record, done markers), an ACGAN run
    cancelled after one step (its step checkpoint and run record stay), a synthetic set of the
    bundle and a report and quality artifact naming their parents the way the evaluation does."""
    torch.set_num_threads(1)
    full = train(
        "gdgan", ds_id, store=store, preset="tiny", overrides=FAST, run_id=f"job-{tag}-g", device="cpu"
    )
    assert full.status == "succeeded"
    polls = itertools.count()
    cut = train(
        "acgan",
        ds_id,
        store=store,
        preset="tiny",
        overrides={**FAST, "steps": "4"},
        run_id=f"job-{tag}-a",
        device="cpu",
        should_stop=lambda: next(polls) >= 2,
    )
    assert cut.status == "cancelled"
    bundle = str(full.model_id)
    syn = write_synthetic_set(store, load_generator(store, bundle), 4, seed=1)
    with store.writer("report") as w:
        w.put_json("report.json", {"ok": True})
        report = w.commit(parents=[ds_id, bundle]).id
    with store.writer("quality") as w:
        w.put_json("scores.json", {"fid": 1.0})
        quality = w.commit(parents=[full.model_ids["stage2"]]).id
    return {"bundle": bundle, "synthetic": syn.id, "report": report, "quality": quality}


def _job(job_id: str, status: str, job_type: str = "train", **params: Any) -> JobRecord:
    return JobRecord(id=job_id, type=job_type, status=status, params=params)


def _ids(store: ArtifactStore) -> set[str]:
    return {m.id for m in store.list()}


def _stored_ids(store: ArtifactStore) -> set[str]:
    """Every artifact folder with any file, manifest or not."""
    return {i for i in store._list_ids() if any(True for _ in store._list_keys(i))}


def _assert_consistent(store: ArtifactStore) -> None:
    """Every visible artifact is whole (all files verify) and every parent it names exists."""
    visible = _ids(store)
    for m in store.list():
        for name in m.files:
            store.get_bytes(m.id, name)
        assert set(m.parents) <= visible, (m.id, m.parents)


def test_delete_removes_exactly_the_lineage_children_first_and_survives_a_crash(
    s3_store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = s3_store
    other = _dataset(store, seed=2)
    other_run = train(
        "acgan", other, store=store, preset="tiny", overrides=FAST, run_id="job-other", device="cpu"
    )
    keep = _ids(store)
    ds_id = _dataset(store, seed=1)
    made = _lineage(store, ds_id, "x")
    doomed = _ids(store) - keep
    assert {ds_id, *made.values()} <= doomed and len(doomed) >= 12

    # dry run: exactly the lineage, derived artifacts before what they derive from, nothing removed
    plan = delete_with_lineage(store, ds_id, dry_run=True)
    assert set(plan.ids) == doomed and plan.ids[-1] == ds_id
    pos = {aid: i for i, aid in enumerate(plan.ids)}
    for aid in plan.ids:
        for parent in store.manifest(aid).parents:
            assert pos[aid] < pos[parent], (aid, parent)
    assert _ids(store) == keep | doomed
    assert plan.total_bytes == sum(store.manifest(i).total_bytes for i in doomed)

    # a queued or running job that uses any of it blocks the delete, naming the job
    for job in (
        _job("job-gen-1", "running", "generate", model=made["bundle"]),
        _job("job-gen-2", "queued", "generate", model="gdgan"),  # an alias that resolves into the lineage
        _job("job-x-a", "running", dataset_id="elsewhere"),  # the cancelled run's own job resumed
    ):
        with pytest.raises(DatasetInUse, match=job.id):
            delete_with_lineage(store, ds_id, active_jobs=[job])
    harmless = [
        _job("job-o", "running", dataset_id=other, model="gdgan"),  # trains a GDGAN: a kind, not a ref
        _job("job-d", "succeeded", dataset_id=ds_id),
    ]
    assert delete_with_lineage(store, ds_id, active_jobs=harmless, dry_run=True).ids == plan.ids

    # a crash half-way: whatever stays visible is complete and has its parents
    real_delete = store._delete_key
    calls = itertools.count()

    def dying_delete(key: str) -> None:
        if next(calls) == 9:
            raise ConnectionError("worker killed mid-deletion")
        real_delete(key)

    monkeypatch.setattr(store, "_delete_key", dying_delete)
    with pytest.raises(ConnectionError):
        execute_deletion(store, plan_deletion(store, ds_id))
    monkeypatch.setattr(store, "_delete_key", real_delete)
    _assert_consistent(store)
    assert ds_id in _ids(store) and _ids(store) < keep | doomed

    # the rerun finishes it, payload files of the half-deleted artifact included
    again = delete_with_lineage(store, ds_id)
    assert again.resumed and again.ids[-1] == ds_id
    assert _ids(store) == keep and _stored_ids(store) == keep
    with pytest.raises(FileNotFoundError):
        store._get_bytes(f"deletions/{ds_id}.json")
    _assert_consistent(store)
    with pytest.raises(ArtifactNotFound):
        delete_with_lineage(store, ds_id, dry_run=True)
    # the unrelated lineage still loads and samples
    assert len(load_dataset(store, other)) == 60
    assert load_generator(store, str(other_run.model_id)).sample(2, seed=0).images.shape[0] == 2


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_gc_removes_old_partial_uploads_and_expired_checkpoints_only(
    backend: str, local_store: ArtifactStore, request: pytest.FixtureRequest
) -> None:
    store = local_store if backend == "local" else request.getfixturevalue("s3_store")
    ds_id = _dataset(store, seed=3)
    polls = itertools.count()
    cut = train(
        "acgan",
        ds_id,
        store=store,
        preset="tiny",
        overrides={**FAST, "steps": "4"},
        run_id="job-cut",
        device="cpu",
        should_stop=lambda: next(polls) >= 2,
    )
    assert cut.status == "cancelled"
    step_ckpts = {m.id for m in store.list("checkpoint") if "step" in m.meta}
    assert step_ckpts
    # a crashed upload: payload files, no manifest
    w = store.writer("synthetic")
    w.put_bytes("images.zip", b"partial" * 100)
    committed = _ids(store)

    now = datetime.now(UTC)
    fresh = collect_garbage(store, grace_s=3600, checkpoint_ttl_s=86400, now=now)
    assert not fresh.orphans and not fresh.expired_checkpoints  # an upload may still be running

    later = now + timedelta(days=2)
    dry = collect_garbage(store, grace_s=3600, checkpoint_ttl_s=86400, now=later, dry_run=True)
    assert [v.id for v in dry.orphans] == [w.id] and dry.orphans[0].bytes == 700
    assert {v.id for v in dry.expired_checkpoints} == step_ckpts
    assert w.id in _stored_ids(store)  # dry run removed nothing

    busy = collect_garbage(store, grace_s=3600, checkpoint_ttl_s=86400, now=later, active_run_ids=["job-cut"])
    assert not busy.expired_checkpoints  # a queued/running job's checkpoints stay
    assert w.id not in _stored_ids(store)

    done = collect_garbage(store, grace_s=3600, checkpoint_ttl_s=86400, now=later)
    assert {v.id for v in done.expired_checkpoints} == step_ckpts
    assert _ids(store) == committed - step_ckpts
    # the run record stays: a later --resume is still checked against what the run started with
    assert store.exists(ds_id) and any(m.meta.get("phase") == "run" for m in store.list("checkpoint"))


def test_cli_store_gc_and_data_delete(local_store: ArtifactStore, tmp_path: Any) -> None:
    """`gdgan store gc` and `gdgan data delete` on a local store (no services: --no-job-check)."""
    import json

    from gdgan.cli.main import app
    from typer.testing import CliRunner

    runner = CliRunner()
    url = f"file://{tmp_path / 'store'}"
    ds_id = _dataset(local_store, seed=4)
    w = local_store.writer("synthetic")
    w.put_bytes("images.zip", b"partial")
    gc = ["store", "gc", "--store", url, "--no-job-check", "--json", "--grace-s", "0"]
    dry = runner.invoke(app, [*gc, "--dry-run"])
    assert dry.exit_code == 0, dry.stderr
    assert [o["id"] for o in json.loads(dry.stdout)["orphans"]] == [w.id] and w.id in _stored_ids(local_store)
    done = runner.invoke(app, gc)
    assert done.exit_code == 0 and w.id not in _stored_ids(local_store)
    delete = ["data", "delete", ds_id, "--store", url, "--no-job-check", "--json"]
    out = runner.invoke(app, [*delete, "--dry-run"])
    assert out.exit_code == 0 and json.loads(out.stdout)["artifacts"][-1]["id"] == ds_id
    assert runner.invoke(app, delete).exit_code == 0 and not local_store.list()
    again = runner.invoke(app, delete)
    assert again.exit_code == 2 and ds_id in again.stderr and len(again.stderr.strip().splitlines()) == 1
