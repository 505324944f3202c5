"""CPU milliseconds per training step of the ``demo`` preset, before vs after, interleaved.

The demo's wall time is mostly GAN training (3 splits × (GDGAN stage 1 + stage 2 + ACGAN)), so
the figure that carries over to an idle 2-core machine is CPU time per step, one torch thread,
as each demo worker runs. This script measures it for the three phases with two versions of
``shared/gdgan`` side by side in one run:

- ``before``: the library at ``--before`` (a git revision, extracted with ``git archive``);
- ``after``: the library of this working tree (or at ``--after``).

Each measurement is a fresh process (``--worker``) that builds the phase exactly as
:mod:`gdgan.training.api` does (random-init frozen G1/D1 for stage 2: a step's cost does not
depend on the weights), warms up, then runs ``run_phase`` for ``--steps`` steps and reports
``time.process_time`` per step. Rounds alternate the order (before, after / after, before) so
a load change on this shared machine hits both alike; the load average is printed with the
figures, as CPU time per step still rises somewhat under load (caches, frequency).

    python benchmarks/bench_train_step.py                    # 3 rounds, 150 steps each
    python benchmarks/bench_train_step.py --rounds 1 --steps 40   # a quick look
    python benchmarks/bench_train_step.py --losses 5              # same seeds: same losses?

Prints a markdown table (median ms/step per phase and version, the ratio) and one JSON line
with the figures and the demo tasks' predicted training CPU-seconds
(``steps × ms/step``; feed them to ``benchmarks/demo_schedule.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHASES = ("stage1", "stage2", "acgan")
DEFAULT_BEFORE = "fd06075"  # main before the training-speed work (2026-12-02)


def worker(phase: str, steps: int, warmup: int, data_file: str) -> dict[str, float]:
    """One phase of the demo preset on the library this process imports; CPU ms per step."""
    import uuid

    import numpy as np
    import torch
    from gdgan.labels import FINDINGS
    from gdgan.models.acgan import build_acgan
    from gdgan.models.gdgan import build_stage1, build_stage2
    from gdgan.store import open_store
    from gdgan.training.api import _gan, _recipe, _weights
    from gdgan.training.data import TrainData
    from gdgan.training.loop import run_phase
    from gdgan.training.phases import ConditionalPhase, Stage2Phase
    from gdgan.training.presets import get_config

    torch.set_num_threads(1)  # as every demo worker (GDGAN_NUM_THREADS=1)
    arrays = np.load(data_file)
    cfg = get_config("demo", {"checkpoint_every": 10**9})
    gan = _gan(cfg)
    data = TrainData(
        images=torch.from_numpy(arrays["images"]),
        general=torch.from_numpy(arrays["general"]),
        detail=torch.from_numpy(arrays["detail"]),
    )
    torch.manual_seed(0)
    if phase == "stage2":
        G1, D1 = build_stage1(gan)
        G, D = build_stage2(gan)
        ph: object = Stage2Phase(G, D, G1, D1, cfg.nz, _weights(cfg, FINDINGS), _recipe(cfg))
    else:
        build = build_acgan if phase == "acgan" else build_stage1
        G, D = build(gan)
        ph = ConditionalPhase(phase, G, D, cfg.nz, _weights(cfg), phase == "acgan", _recipe(cfg))
    if phase != "stage1":
        data = data.with_focus(FINDINGS.index(cfg.focus_finding), cfg.focus_share)
    with tempfile.TemporaryDirectory(prefix="gdgan-step-") as tmp:
        store = open_store(f"file://{tmp}")

        def run(n: int) -> float:
            t0 = time.process_time()
            run_phase(
                ph, data, cfg, total=n, store=store, run_id=uuid.uuid4().hex, device=torch.device("cpu")
            )
            return time.process_time() - t0

        if warmup == 0:  # --losses: the same seeds in both versions, no warm-up
            r = run_phase(ph, data, cfg, total=steps, store=store, run_id="x", device=torch.device("cpu"))
            return {k: v for k, v in r.history.items() if k != "step"}
        run(warmup)
        cpu = run(steps)
    return {"ms_per_step": 1000.0 * cpu / steps, "load1": os.getloadavg()[0]}


def _extract(rev: str, dest: Path) -> Path:
    """``shared/gdgan`` at git revision ``rev`` into ``dest``; returns the folder for PYTHONPATH."""
    blob = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "shared/gdgan"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "shared"


def _write_data(path: Path, n: int, seed: int) -> None:
    """The demo's training images (phantom, 64 px -> the preset's 32 px) as arrays, made once."""
    import numpy as np
    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.training.data import resize_uint8
    from gdgan.training.presets import get_config

    ds = make_phantom(PhantomConfig(n=n, size=64, seed=seed))
    imgs = resize_uint8(np.asarray(ds.images), get_config("demo").size)[:, None]
    np.savez(path, images=imgs, general=ds.general(), detail=ds.detail())


def _measure(pythonpath: Path, phase: str, a: argparse.Namespace, data: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", phase, "--steps", str(a.steps), "--warmup", str(a.warmup)]
    out = subprocess.run([*cmd, "--data", str(data)], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of the 'before' library")
    ap.add_argument("--after", default="", help="git revision of the 'after' library (default: this tree)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--n", type=int, default=4000, help="phantom training images")
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument(
        "--losses",
        type=int,
        default=0,
        help="instead of timing: train N steps from the same seeds in both versions and print "
        "the largest relative difference of the logged losses (rounding only)",
    )
    ap.add_argument("--worker", choices=PHASES, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.steps, a.warmup, a.data)))
        return
    phases = [p for p in a.phases.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="gdgan-bench-step-") as tmp:
        paths = {
            "before": _extract(a.before, Path(tmp) / "before"),
            "after": _extract(a.after, Path(tmp) / "after") if a.after else REPO / "shared",
        }
        data = Path(tmp) / "demo_data.npz"
        _write_data(data, a.n, 0)
        if a.losses:
            a.steps, a.warmup = a.losses, 0
            for phase in phases:
                old, new = (_measure(paths[v], phase, a, data) for v in ("before", "after"))
                first = max(abs(old[k][0] - new[k][0]) / max(abs(old[k][0]), 1e-6) for k in old)
                worst = max(
                    abs(x - y) / max(abs(x), 1e-6) for k in old for x, y in zip(old[k], new[k], strict=True)
                )
                print(
                    f"{phase}: losses, largest relative difference: step 1 {first:.1e}, "
                    f"{a.losses} steps {worst:.1e}"
                )
            return
        got: dict[str, dict[str, list[float]]] = {p: {"before": [], "after": []} for p in phases}
        loads: list[float] = [os.getloadavg()[0]]
        for r in range(a.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for phase in phases:
                for version in order:
                    res = _measure(paths[version], phase, a, data)
                    got[phase][version].append(res["ms_per_step"])
                    loads.append(res["load1"])
                    print(
                        f"round {r} {phase:6s} {version:6s} {res['ms_per_step']:6.2f} ms/step "
                        f"(load {res['load1']:.2f})",
                        file=sys.stderr,
                    )
    from gdgan.training.presets import get_config

    cfg = get_config("demo")
    steps = {"stage1": cfg.steps, "stage2": cfg.stage2_steps or cfg.steps, "acgan": cfg.steps}
    print(
        f"\nCPU ms per step, demo preset, 1 thread, median of {a.rounds} "
        f"(load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores)\n"
    )
    print("| phase | before | after | after / before | training CPU-s per task before → after |")
    print("|---|---|---|---|---|")
    summary: dict[str, object] = {
        "before_rev": a.before,
        "rounds": a.rounds,
        "steps": a.steps,
        "load1_min": min(loads),
        "load1_max": max(loads),
    }
    for phase in phases:
        b, f = statistics.median(got[phase]["before"]), statistics.median(got[phase]["after"])
        sb, sf = steps[phase] * b / 1000, steps[phase] * f / 1000
        print(f"| {phase} | {b:.1f} | {f:.1f} | {f / b:.2f} | {sb:.0f} → {sf:.0f} |")
        summary[phase] = {
            "before_ms": round(b, 2),
            "after_ms": round(f, 2),
            "ratio": round(f / b, 3),
            "runs_before": got[phase]["before"],
            "runs_after": got[phase]["after"],
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
