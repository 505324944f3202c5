"""The training benchmarks run (tiny settings); their figures are measured by hand, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script,args", [("gpu_bench.py", ["--smoke"]), ("bench_training.py", ["--quick"])])
def test_benchmark_runs(script: str, args: list[str]) -> None:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    if script == "gpu_bench.py":
        assert {r["phase"] for r in out["results"]} == {"stage1", "stage2", "acgan"}
        assert all(r["images_per_s"] > 0 for r in out["results"])
        # the quality part trained the paper preset and scored it at least once per stage
        (run,) = out["quality"]["recipes"]
        assert run["name"] == "paper-gpu" and run["config"]["loss"] == "wgan-gp"
        assert {p["stage"] for p in run["points"]} == {1, 2}
        assert all(0 <= p["acc_view"] <= 1 and p["rel_fd"] > 0 for p in run["points"])
    else:
        assert out["ours_images_per_s"] > 0 and out["naive_images_per_s"] > 0 and out["ratio"] > 0
