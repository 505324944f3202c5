"""The training benchmarks run (tiny settings); their figures are measured by hand, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script,args", [("gpu_bench.py", ["--smoke"]), ("bench_training.py", ["--quick"])])
def test_benchmark_runs(script: str, args: list[str]) -> None:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
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
    else:
        assert out["ours_images_per_s"] > 0 and out["naive_images_per_s"] > 0 and out["ratio"] > 0
