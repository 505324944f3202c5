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
        # data parallel on the CPU (2 gloo ranks vs 1 process); without a GPU its rows say so
        rows = {r["setup"]: r for r in out["ddp"]["rows"]}
        assert rows["2 CPU ranks, DDP (gloo)"]["world"] == 2 and rows["1 CPU process"]["world"] == 1
        assert all(rows[k]["images_per_s"] > 0 for k in ("2 CPU ranks, DDP (gloo)", "1 CPU process"))
        assert rows["2 GPUs, DDP (NCCL)"]["images_per_s"] == "not measured"
        # generator service at 16 clients, micro-batching on and off, n=1 and n=16
        gen = out["generator"]
        assert gen["clients"] == 16 and {(r["batching"], r["n"]) for r in gen["rows"]} == {
            (b, n) for b in (True, False) for n in (1, 16)
        }
        assert all(r["images_per_s"] > 0 for r in gen["rows"])
    else:
        assert out["ours_images_per_s"] > 0 and out["naive_images_per_s"] > 0 and out["ratio"] > 0


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=ROOT,
    )


def test_recipe_benchmark_writes_curves_for_every_recipe(tmp_path: Path) -> None:
    res = _run("bench_recipe.py", "--smoke", "--recipes", "paper-32,modern-32", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / "curves.json").read_text())
    runs = {r["name"]: r for r in out["recipes"]}
    assert set(runs) == {"paper-32", "modern-32"}
    assert runs["paper-32"]["config"]["loss"] == "wgan-gp" and runs["modern-32"]["config"]["loss"] == "hinge"
    for r in runs.values():
        cpu = [p["cpu_s"] for p in r["points"]]
        assert cpu == sorted(cpu) and {p["stage"] for p in r["points"]} == {1, 2}
        assert all(0.0 <= p["auc_cardio"] <= 1.0 for p in r["points"] if p["stage"] == 2)
    for name in ("curves.png", "table.md", "grid_paper-32.png", "model_modern-32.safetensors"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| modern-32 |" in (tmp_path / "table.md").read_text()


def test_demo_quality_checks_every_target(tmp_path: Path) -> None:
    res = _run("demo_quality.py", "--smoke", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / "demo_quality.json").read_text())
    assert [t["figure"] for t in out["targets"]] == [
        "gender_accuracy",
        "view_accuracy",
        "finding_auc_paired",
        "finding_auc_independent",
        "ctr_share_pos",
        "ctr_share_neg",
        "relative_fd",
        "recall",
    ]
    for t in out["targets"]:  # a figure is judged against its target, or it is missing
        v = t["reached"]
        if v is not None:
            op, target = t["target"].split()
            assert t["met"] == (v >= float(target) if op == ">=" else v <= float(target))
    assert out["cpu_s"]["both"] > 0 and out["config"]["loss"] == "hinge"
    assert (tmp_path / "grid_stage2.png").stat().st_size > 0
