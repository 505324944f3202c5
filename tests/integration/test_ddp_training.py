"""Distributed training on CPU (gloo, 2 ranks under the real torchrun): the CLI path against one
process, a resume from 2 ranks onto 1, and a killed rank (a failure that says so, then a resume;
or torchrun's restart, which resumes by itself).

Tolerance of "equal to one process with the same global batch": the runs cannot be bit-equal,
since each rank draws from its own shard with its own stream. Measured on the tiny preset
(phantom n=200, 30 steps, global batch 16), seeds 0 and 1: every final-loss part of the
2-rank run within 4.6 % (mean 1.8 %) of the 1-process run with the same seed, while one process
with another seed differs by up to 31 % (mean 8.3 %). The test asserts 10 % per part and that
the 2-rank run is closer to its 1-process twin than another seed is.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.progress import Progress
from gdgan.store import open_store
from gdgan.store.local import LocalStore
from gdgan.training import checkpoint as ck
from gdgan.training.api import train
from gdgan.training.launch import Launch, RankFailure, run_ranks
from svcstack import cli_env, cli_json, wait_for

pytestmark = pytest.mark.integration
REL_TOL = 0.10  # per final-loss part; measured max 4.6 % (see the module docstring)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def dataset_id(root: Path) -> str:
    ds = make_phantom(PhantomConfig(n=200, size=32, seed=1, prevalence={"Cardiomegaly": 0.3}))
    ds.save(LocalStore(root / "store"))
    return str(ds.id)


@pytest.fixture()
def env(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI subprocesses' environment, also this process's (train() and run_ranks read it)."""
    e = cli_env(root, GDGAN_NUM_THREADS="1")
    for k, v in e.items():
        monkeypatch.setenv(k, v)
    from gdgan.settings import get_settings

    get_settings.cache_clear()
    return e


def _rel(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: abs(a[k] - b[k]) / max(abs(b[k]), 1e-6) for k in b}


def test_two_ranks_from_the_cli_match_one_process(env: dict[str, str], dataset_id: str) -> None:
    torch.set_num_threads(1)
    store = open_store()
    one = {
        s: train("stage1", dataset_id, store=store, preset="tiny", overrides={"seed": s}, run_id=f"one-{s}")
        for s in (0, 1)
    }
    two = cli_json(
        [
            "train",
            "stage1",
            "--dataset",
            dataset_id,
            "--preset",
            "tiny",
            "--nproc-per-node",
            "2",
            "--resume",
            "two-0",
        ],
        env,
        timeout=600,
    )
    assert two["status"] == "succeeded" and two["steps"] == {"stage1": 30}
    near = _rel(two["final_losses"]["stage1"], one[0].final_losses["stage1"])
    seed_noise = _rel(one[1].final_losses["stage1"], one[0].final_losses["stage1"])
    assert max(near.values()) < REL_TOL, near
    assert sum(near.values()) < sum(seed_noise.values()), (near, seed_noise)
    # rank 0 alone wrote: one model artifact for the run
    models = [m for m in store.list(kind="gdgan-stage1") if m.meta.get("run_id") == "two-0"]
    assert len(models) == 1 and models[0].id == two["id"]


def test_resume_from_two_ranks_on_one(
    env: dict[str, str], dataset_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A 2-rank run stopped after its first checkpoint continues in one process: same global
    batch, the weights and history of the checkpoint, new per-rank streams (logged)."""
    store = open_store()
    spec = {"kind": "stage1", "dataset_id": dataset_id, "preset": "tiny", "run_id": "two-to-one"}
    spec["overrides"] = {"steps": 400, "checkpoint_every": 10}
    first = run_ranks(
        spec,
        Launch(2),
        progress=lambda p: None,
        should_stop=lambda: ck.latest_checkpoint(store, "two-to-one", "stage1") is not None,
    )
    assert first["status"] == "cancelled"
    tensors, state = ck.load_checkpoint(store, first["checkpoint_id"])
    stopped = state["step"]
    assert state["world_size"] == 2 and 10 <= stopped < 400
    assert "rng.rows.1" in tensors and "rng.rows.2" not in tensors  # both ranks' streams, by rank 0
    steps: list[int] = []
    with caplog.at_level(logging.WARNING, logger="gdgan.training.loop"):
        res = train(
            "stage1",
            dataset_id,
            store=store,
            preset="tiny",
            overrides={"steps": 400, "checkpoint_every": 10},
            run_id="two-to-one",
            progress=lambda p: steps.append(p.step),
        )
    assert "resuming a 2-rank checkpoint on 1 ranks" in caplog.text
    assert res.status == "succeeded" and res.steps["stage1"] == 400
    assert steps and min(steps) > stopped  # continued from the 2-rank checkpoint, not from 0


def _kill_rank_after_checkpoint(store: object, run_id: str, wd: Path, rank: int) -> threading.Thread:
    def kill() -> None:
        wait_for(lambda: ck.latest_checkpoint(store, run_id, "stage1") is not None, 300, "a checkpoint")
        pid = int((wd / f"rank-{rank}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        (wd / "killed").write_text(str(pid))

    t = threading.Thread(target=kill, daemon=True)
    t.start()
    return t


def test_a_killed_rank_fails_clearly_then_the_run_resumes(
    env: dict[str, str], dataset_id: str, tmp_path: Path
) -> None:
    store = open_store()
    spec = {"kind": "stage1", "dataset_id": dataset_id, "preset": "tiny", "run_id": "killed"}
    spec["overrides"] = {"steps": 150, "checkpoint_every": 10}
    wd = tmp_path / "wd"
    wd.mkdir()
    killer = _kill_rank_after_checkpoint(store, "killed", wd, rank=1)
    with pytest.raises(RankFailure) as info:
        run_ranks(
            spec, Launch(2, max_restarts=0), progress=lambda p: None, should_stop=lambda: False, workdir=wd
        )
    killer.join(5)
    msg = str(info.value)
    assert "rank 1 was killed by SIGKILL" in msg and "resume" in msg, msg
    saved = ck.latest_checkpoint(store, "killed", "stage1")
    assert saved is not None and saved.meta["step"] >= 10
    # the same run id again: resumes from that checkpoint and finishes
    res = run_ranks(spec, Launch(2), progress=lambda p: None, should_stop=lambda: False)
    assert res["status"] == "succeeded" and res["steps"] == {"stage1": 150}


def test_a_killed_rank_is_relaunched_and_the_run_resumes(
    env: dict[str, str], dataset_id: str, tmp_path: Path
) -> None:
    store = open_store()
    spec = {"kind": "stage1", "dataset_id": dataset_id, "preset": "tiny", "run_id": "restarted"}
    spec["overrides"] = {"steps": 150, "checkpoint_every": 10}
    wd = tmp_path / "wd"
    wd.mkdir()
    killer = _kill_rank_after_checkpoint(store, "restarted", wd, rank=0)
    after_kill: list[int] = []  # progress steps reported once the kill happened

    def progress(p: Progress) -> None:
        if (wd / "killed").exists():
            after_kill.append(p.step)

    try:
        res = run_ranks(
            spec,
            Launch(2, max_restarts=1),
            progress=progress,
            should_stop=lambda: False,
            workdir=wd,
        )
    except RankFailure as exc:
        pytest.fail(f"{exc}\n{exc.tail}")
    killer.join(5)
    killed = int((wd / "killed").read_text())
    assert res["status"] == "succeeded" and res["steps"] == {"stage1": 150}
    assert int((wd / "rank-0.pid").read_text()) != killed  # a new rank 0 finished the run
    # the relaunched group resumed from the checkpoint (step >= 10), not from step 0
    assert after_kill and min(after_kill) >= 10, after_kill


SUPERVISOR = """
import json, sys
from pathlib import Path
from gdgan.training.launch import Launch, run_ranks
run_ranks(json.loads(sys.argv[1]), Launch(2), progress=lambda p: None, should_stop=lambda: False,
          workdir=Path(sys.argv[2]))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ranks_checkpoint_and_exit_when_their_supervisor_is_killed(
    env: dict[str, str], dataset_id: str, tmp_path: Path
) -> None:
    """A trainer worker killed by SIGKILL must not leave its ranks training: the redelivered job
    would meet them. They notice at their next step, checkpoint (the only checkpoint this run
    can write) and exit."""
    store = open_store()
    spec = {"kind": "stage1", "dataset_id": dataset_id, "preset": "tiny", "run_id": "orphaned"}
    spec["overrides"] = {"steps": 100000, "checkpoint_every": 100000}
    wd = tmp_path / "wd"
    wd.mkdir()
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR, json.dumps(spec), str(wd)], env=env)
    try:
        pids = wait_for(
            lambda: (
                [int((wd / f"rank-{r}.pid").read_text()) for r in (0, 1) if (wd / f"rank-{r}.pid").exists()]
                if len(list(wd.glob("rank-*.pid"))) == 2
                else None
            ),
            300,
            "both ranks",
        )
        time.sleep(5)  # some steps
    finally:
        sup.kill()
        sup.wait()
    wait_for(lambda: not any(_alive(p) for p in pids), 180, "the ranks to exit")
    saved = ck.latest_checkpoint(store, "orphaned", "stage1")
    assert saved is not None and saved.meta["step"] < 100000  # written by the stop path
