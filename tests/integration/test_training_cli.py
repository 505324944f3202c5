"""`gdgan train` / `gdgan sample` as real subprocesses, and training against a real S3 server."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.store.local import LocalStore
from gdgan.training import checkpoint as ck
from gdgan.training.api import train
from gdgan.training.sampling import load_generator

pytestmark = pytest.mark.integration
GDGAN = [sys.executable, "-m", "gdgan.cli.main"]
FAST = [
    "--set",
    "steps=4",
    "--set",
    "checkpoint_every=2",
    "--set",
    "ngf=8",
    "--set",
    "ndf=8",
    "--set",
    "batch_size=8",
]


def _env(store_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    env |= {
        "GDGAN_STORE_URL": store_root.resolve().as_uri(),
        "GDGAN_DATA_DIR": str(store_root.parent / "data"),
        "GDGAN_CACHE_DIR": str(store_root.parent / "cache"),
        "GDGAN_NUM_THREADS": "1",
        "GDGAN_DEVICE": "cpu",
    }
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GDGAN, *args], env=env, capture_output=True, text=True, timeout=600)


def test_train_and_sample_from_the_command_line(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ds = make_phantom(PhantomConfig(n=100, size=32, seed=1, prevalence={"Cardiomegaly": 0.3}))
    ds.save(LocalStore(root))
    env = _env(root)

    res = _run(
        ["train", "gdgan", "--dataset", ds.id, "--preset", "tiny", *FAST, "--resume", "cli-run", "--json"],
        env,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert out["status"] == "succeeded" and out["id"] == out["model_ids"]["gdgan"]
    assert out["run_id"] == "cli-run" and out["steps"] == {"stage1": 4, "stage2": 4}

    res = _run(["train", "gdgan", "--dataset", ds.id, "--preset", "huge"], env)
    assert res.returncode == 2 and "huge" in res.stderr and "Traceback" not in res.stderr

    dest = tmp_path / "samples"
    res = _run(
        [
            "sample",
            out["id"],
            "--n",
            "6",
            "--finding",
            "Cardiomegaly",
            "--view",
            "AP",
            "--seed",
            "7",
            "--stage",
            "2",
            "--out",
            str(dest),
        ],
        env,
    )
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader((dest / "labels.csv").read_text().splitlines()))
    assert [r["file"] for r in rows] == [f"img_{i:06d}.png" for i in range(6)]
    assert all(r["view"] == "AP" and r["finding_labels"] == "Cardiomegaly" for r in rows)
    assert (dest / "grid.png").stat().st_size > 0
    again = tmp_path / "again"
    _run(
        [
            "sample",
            out["id"],
            "--n",
            "6",
            "--finding",
            "Cardiomegaly",
            "--view",
            "AP",
            "--seed",
            "7",
            "--out",
            str(again),
        ],
        env,
    )
    assert all((dest / r["file"]).read_bytes() == (again / r["file"]).read_bytes() for r in rows)


def test_cancel_and_resume_through_s3(s3_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Checkpoints live in the (real) S3 store: a fresh process-like call resumes from them."""
    torch.set_num_threads(1)
    ds = make_phantom(PhantomConfig(n=80, size=32, seed=2, prevalence={"Cardiomegaly": 0.3}))
    ds.save(s3_store)
    fast = {"steps": 4, "checkpoint_every": 2, "ngf": 8, "ndf": 8, "batch_size": 8}
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 6  # 4 stage-1 steps, then 2 of stage 2

    r = train(
        "gdgan",
        ds.id,
        store=s3_store,
        preset="tiny",
        overrides=fast,
        run_id="s3-job",
        device="cpu",
        should_stop=stop,
    )
    assert r.status == "cancelled" and "stage1" in r.model_ids
    assert ck.latest_checkpoint(s3_store, "s3-job", "stage2").meta["step"] == 2
    r2 = train("gdgan", ds.id, store=s3_store, preset="tiny", overrides=fast, run_id="s3-job", device="cpu")
    assert r2.status == "succeeded" and r2.model_ids["stage1"] == r.model_ids["stage1"]
    ref_store = LocalStore(tmp_path / "ref")
    ref = train("gdgan", ds, store=ref_store, preset="tiny", overrides=fast, run_id="ref", device="cpu")
    a = load_generator(s3_store, r2.model_id, device="cpu").sample(4, "Cardiomegaly", seed=3)
    b = load_generator(ref_store, ref.model_id, device="cpu").sample(4, "Cardiomegaly", seed=3)
    assert np.array_equal(a.images, b.images)  # resumed via S3 == uninterrupted
