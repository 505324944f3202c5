"""`gdgan quality` end to end on a tiny trained model (real subprocesses, real local store), and
the quality curve recorded during training and stored in the model artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.store.local import LocalStore
from gdgan.training.curves import CURVE_FILE, CURVE_PNG
from gdgan.training.sampling import resolve_model

pytestmark = pytest.mark.integration
GDGAN = [sys.executable, "-m", "gdgan.cli.main"]


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    return env | {
        "GDGAN_STORE_URL": root.resolve().as_uri(),
        "GDGAN_DATA_DIR": str(root.parent / "data"),
        "GDGAN_CACHE_DIR": str(root.parent / "cache"),
        "GDGAN_NUM_THREADS": "1",
        "GDGAN_DEVICE": "cpu",
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GDGAN, *args], env=env, capture_output=True, text=True, timeout=900)


def test_quality_cli_and_training_curves(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStore(root)
    ds = make_phantom(PhantomConfig(n=600, size=32, seed=2, prevalence={"Cardiomegaly": 0.3}))
    ds.save(store)
    env = _env(root)
    fast = ["--set", "steps=6", "--set", "checkpoint_every=6", "--set", "ngf=8", "--set", "ndf=8"]
    curve = ["--set", "quality_every=3", "--set", "quality_n=40", "--set", "quality_judge=tiny"]
    res = _run(["train", "gdgan", "--dataset", ds.id, "--preset", "tiny", *fast, *curve, "--json"], env)
    assert res.returncode == 0, res.stderr[-2000:]
    bundle = json.loads(res.stdout)["id"]

    # the curve: both stages, points at steps 3 and 6, plotted; one judge trained and reused
    m = store.manifest(bundle)
    assert CURVE_FILE in m.files and CURVE_PNG in m.files
    curves = store.get_json(bundle, CURVE_FILE)
    assert [c["phase"] for c in curves] == ["stage1", "stage2"]
    assert [p["step"] for p in curves[0]["points"]] == [3, 6]
    assert curves[1]["points"][-1]["finding_auc_paired"] is not None
    assert curves[1]["final"]["models"]["stage2"]["distances"]["n_real"] == 40
    assert store.get_bytes(bundle, CURVE_PNG)[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(store.list("judge")) == 1
    assert m.meta["quality"]["step"] == 6

    # gdgan quality on the bundle alias: JSON with distances, GAN-test and the ceiling
    res = _run(["quality", "gdgan", "--n", "60", "--judge", "tiny", "--json"], env)
    assert res.returncode == 0, res.stderr[-2000:]
    q = json.loads(res.stdout)
    assert set(q["models"]) == {"stage1", "stage2"}
    s2 = q["models"]["stage2"]
    assert s2["model_id"] == resolve_model(store, "gdgan").id
    assert 0 <= s2["distances"]["precision"] <= 1 and s2["distances"]["relative_fd"] > 0
    assert 0 <= s2["gan_test"]["paired"]["auc"] <= 1 and "ctr" in s2["gan_test"]["independent"]
    assert q["ceiling"]["gender_accuracy"] > 0.5 and q["reference"]["relative_fd"] == 1.0
    assert store.manifest(q["id"]).kind == "quality" and bundle in store.manifest(q["id"]).parents
    assert len(store.list("judge")) == 1  # the judge of this split was reused, not retrained

    # human output and a bad model id: a table, and a one-line error with exit code 2
    res = _run(["quality", "gdgan", "--n", "40", "--judge", "tiny"], env)
    assert res.returncode == 0 and "relative FD" in res.stdout and "real test (ceiling)" in res.stdout
    res = _run(["quality", "no-such-model"], env)
    assert res.returncode == 2 and "no-such-model" in res.stderr and "Traceback" not in res.stderr
