"""``gdgan evaluate`` tells bad input from a failure: a wrong model id is one line and exit code
2 before anything runs; a KeyError or ValueError deep inside the run (here: a stored GDGAN bundle
whose stage ids are missing or malformed, met by the lineage check) keeps its traceback and exits
1. The old CLI called both 'bad input' (exit 2, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.store.local import LocalStore


@pytest.fixture(params=[({}, "KeyError"), ({"stage1": "Not/An-Id", "stage2": "x"}, "InvalidArtifactId")])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    meta, error = request.param
    store = LocalStore(tmp_path / "store")
    ds = make_phantom(PhantomConfig(n=200, size=32, seed=3, prevalence={"Cardiomegaly": 0.3})).save(store)
    ids = {"dataset": ds.id, "error": error}
    for kind in ("gdgan", "acgan"):  # registered models whose manifests are broken
        with store.writer(kind) as w:
            w.put_bytes("generator.safetensors", b"not weights")
            ids[kind] = w.commit(config={}, meta=meta if kind == "gdgan" else {}).id
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    env.update(
        GDGAN_STORE_URL=store.root.as_uri(),
        GDGAN_DATA_DIR=str(tmp_path / "data"),
        GDGAN_CACHE_DIR=str(tmp_path / "cache"),
        GDGAN_NUM_THREADS="1",
        GDGAN_DEVICE="cpu",
    )
    return env, ids


def _evaluate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gdgan.cli.main", "evaluate", "--repeats", "1", "--preset", "tiny", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_wrong_model_id_is_one_line_exit_2(setup: tuple[dict[str, str], dict[str, str]]) -> None:
    env, ids = setup
    res = _evaluate(
        env, "--dataset", ids["dataset"], "--gdgan", "gdgan-20260101-0000000000", "--acgan", ids["acgan"]
    )
    assert res.returncode == 2, res.stderr
    assert "gdgan-20260101-0000000000" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_error_deep_in_the_run_keeps_its_traceback(setup: tuple[dict[str, str], dict[str, str]]) -> None:
    env, ids = setup
    res = _evaluate(env, "--dataset", ids["dataset"], "--gdgan", ids["gdgan"], "--acgan", ids["acgan"])
    assert res.returncode == 1, res.stderr[-3000:]
    assert "Traceback" in res.stderr and ids["error"] in res.stderr and "lineage.py" in res.stderr
