"""`gdgan train KIND --resume RUN_ID` through the real CLI (typer app, in process): the run's
dataset, preset, split seed, --set values and stage-1 model come from the stored run, and a
flag that contradicts the run is a one-line error naming it.

Before: --dataset was required, the preset fell back to demo (a tiny run then failed in
stage 2 on the size mismatch) and a new --set was silently ignored.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from gdgan.cli.main import app
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.settings import get_settings
from gdgan.store.local import LocalStore
from gdgan.training.api import train
from gdgan.training.runs import load_run_record
from typer.testing import CliRunner

runner = CliRunner()
FAST = {"steps": "4", "checkpoint_every": "2", "batch_size": "8", "ngf": "8", "ndf": "8"}


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalStore]:
    torch.set_num_threads(1)
    root = tmp_path / "store"
    monkeypatch.setenv("GDGAN_STORE_URL", root.resolve().as_uri())
    monkeypatch.setenv("GDGAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GDGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GDGAN_DEVICE", "cpu")
    get_settings.cache_clear()
    yield LocalStore(root)
    get_settings.cache_clear()


def _one_line_error(res: object, *needles: str) -> str:
    assert res.exit_code == 2, res.stdout  # type: ignore[attr-defined]
    text = res.stderr.strip()  # type: ignore[attr-defined]
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    for n in needles:
        assert n in text, text
    return text


def test_resume_restores_the_run_and_refuses_contradictions(store: LocalStore) -> None:
    ds = make_phantom(PhantomConfig(n=100, size=32, seed=1, prevalence={"Cardiomegaly": 0.3}))
    ds.save(store)
    # a tiny gdgan run (split seed 3, overrides) stopped in stage 2: stage 1 is finished
    polls = itertools.count()
    r = train(
        "gdgan",
        ds.id,
        store=store,
        preset="tiny",
        overrides=FAST,
        split_seed=3,
        run_id="run-7",
        device="cpu",
        should_stop=lambda: next(polls) >= 6,  # 4 stage-1 steps, then 2 of stage 2
    )
    assert r.status == "cancelled" and "stage1" in r.model_ids
    rec = load_run_record(store, "run-7")
    assert rec is not None and rec.preset == "tiny" and rec.split_seed == 3 and rec.overrides == FAST

    # contradicting flags: one line naming what differs, nothing trained
    _one_line_error(
        runner.invoke(app, ["train", "gdgan", "--resume", "run-7", "--set", "steps=9"]), "steps=9"
    )
    _one_line_error(
        runner.invoke(app, ["train", "gdgan", "--resume", "run-7", "--preset", "demo"]), "loss=hinge"
    )
    _one_line_error(
        runner.invoke(app, ["train", "gdgan", "--resume", "run-7", "--split-seed", "0"]), "split seed 0"
    )
    _one_line_error(
        runner.invoke(app, ["train", "stage1", "--resume", "run-7"]),
        "'gdgan' run",
        "gdgan train gdgan --resume run-7",
    )
    _one_line_error(runner.invoke(app, ["train", "gdgan", "--preset", "tiny"]), "--dataset is required")

    # --resume alone (a repeated, identical --set is fine) finishes stage 2 with the run's settings
    res = runner.invoke(app, ["train", "gdgan", "--resume", "run-7", "--set", "steps=4", "--json"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "succeeded" and out["run_id"] == "run-7"
    assert out["model_ids"]["stage1"] == r.model_ids["stage1"]
    s2 = store.manifest(out["model_ids"]["stage2"])
    assert (
        s2.config["model"]["size"] == 32 and s2.config["train"]["steps"] == 4 and s2.meta["split_seed"] == 3
    )


def test_resumed_stage2_keeps_the_stage1_model_it_started_with(store: LocalStore) -> None:
    """A stage-2 run started from the alias 'stage1' refines that model after a resume, even
    when the alias has moved on to a newer stage-1 model meanwhile."""
    ds = make_phantom(PhantomConfig(n=100, size=32, seed=2, prevalence={"Cardiomegaly": 0.3}))
    ds.save(store)
    tiny = {"store": store, "preset": "tiny", "device": "cpu"}
    first = train("stage1", ds.id, overrides=FAST, **tiny)
    stopped = train(
        "stage2",
        ds.id,
        overrides=FAST,
        stage1_model="stage1",
        run_id="s2-run",
        should_stop=lambda: True,
        **tiny,
    )
    assert stopped.status == "cancelled"
    newer = train("stage1", ds.id, overrides={**FAST, "seed": "5"}, **tiny)
    assert store.latest("gdgan-stage1").id == newer.model_id != first.model_id
    res = runner.invoke(app, ["train", "stage2", "--resume", "s2-run", "--json"])
    assert res.exit_code == 0, res.stderr
    s2 = store.manifest(json.loads(res.stdout)["id"])
    assert s2.meta["stage1"] == first.model_id
    other = runner.invoke(app, ["train", "stage2", "--resume", "s2-run", "--stage1", newer.model_id])
    _one_line_error(other, f"stage 1 {newer.model_id}")
