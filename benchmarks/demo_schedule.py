"""The demo's evaluation job on an idle machine: wall time and idle core-seconds of the task
schedule, the old one beside the new one, from measured CPU seconds per task.

Why a model: the only machine here is shared by eight engineers (load 5–17), so the demo's wall
time measured here says little about ``make demo`` on an idle 2-core machine, while its CPU
seconds per task do carry over. This replays the job system's queues exactly as
``gdgan.jobs.eval_tasks`` fills them — FIFO queues ``train`` and ``eval``, one task at a time per
worker (solo pool), a GAN part enqueuing its classifier, the report once every part is done —
on ``--cores`` cores shared equally by the busy workers (each worker runs one torch thread,
``gdgan up`` gives 2 trainers + 2 evaluators on 2 cores), and prints both schedules:

- ``old``: GAN parts longest first (every GDGAN, then every ACGAN); the report task computes the
  quality sections itself, on one thread, after the last classifier;
- ``new``: split 0's GANs first; the two quality sections are parts of their own, enqueued on
  ``eval`` once split 0's GANs exist; the report task only aggregates;
- ``split`` (now ``gdgan.jobs.eval_tasks``): as ``new``, with each GDGAN as two trainer parts,
  stage 1 at fan-out and stage 2 + bundle enqueued (at the queue's tail) when stage 1 is stored.

Each schedule runs with the training costs before and after the training-speed changes
(``TRAIN_COSTS``, or ``--bench`` with the JSON line of ``benchmarks/bench_train_step.py``); the
modelled demo walls are also scaled to one real ``make demo`` (``--measured``), since the model
leaves out what the real stack adds.

    python benchmarks/demo_schedule.py                               # the figures in the notes
    python benchmarks/demo_schedule.py --bench step.json             # costs from a new benchmark
    python benchmarks/demo_schedule.py --costs after --stage1 150    # e.g. a longer stage 1
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Task:
    name: str
    queue: str
    cpu: float  # CPU seconds on one core
    after: list[str] = field(default_factory=list)  # enqueued once all of these are done


def build(kind: str, repeats: int, costs: dict[str, float]) -> tuple[list[Task], list[str]]:
    """The tasks and their initial queue order for schedule ``kind`` ('old', 'new' or 'split').

    ``split``: as ``new``, but a GDGAN is two parts, stage 1 (``gan:gdgan1:rK``, at fan-out)
    and stage 2 + bundle (``gan:gdgan:rK``, enqueued at the tail of ``train`` when its stage 1
    is stored), so the last task of a trainer is a short one."""
    gd = [f"gan:gdgan:r{r}" for r in range(repeats)]
    ac = [f"gan:acgan:r{r}" for r in range(repeats)]
    if kind == "split":
        s1 = [f"gan:gdgan1:r{r}" for r in range(repeats)]
        gan_order = [s1[0], ac[0], *s1[1:], *ac[1:]]
        tasks = [Task(g, "train", costs["stage1"]) for g in s1]
        tasks += [Task(g, "train", costs["stage2"], [s]) for g, s in zip(gd, s1, strict=True)]
    else:
        gan_order = gd + ac if kind == "old" else [gd[0], ac[0], *gd[1:], *ac[1:]]
        tasks = [Task(g, "train", costs["stage1"] + costs["stage2"]) for g in gd]
    tasks += [Task(a, "train", costs["acgan"]) for a in ac]
    clfs = []
    for r in range(repeats):
        for s in ("none", "undersample", "oversample", "acgan", "gdgan"):
            dep = [f"gan:{s}:r{r}"] if s in ("acgan", "gdgan") else []
            clfs.append(Task(f"clf:{s}:r{r}", "eval", costs["classifier"], dep))
    tasks += clfs
    if kind == "old":
        report_cpu = costs["report"] + costs["quality"] + costs["harness"]
        tasks.append(Task("report", "eval", report_cpu, [c.name for c in clfs]))
    else:
        secs = [
            Task(f"sec:{n}", "eval", costs[n], ["gan:gdgan:r0", "gan:acgan:r0"])
            for n in ("quality", "harness")
        ]
        tasks += secs
        tasks.append(Task("report", "eval", costs["report"], [c.name for c in clfs] + [s.name for s in secs]))
    first = gan_order + [c.name for c in clfs if not c.after]
    return tasks, first


def simulate(
    tasks: list[Task], first: list[str], trainers: int, evaluators: int, cores: float
) -> dict[str, float]:
    """Wall seconds to the report's end and idle core-seconds, processor sharing among busy workers."""
    by = {t.name: t for t in tasks}
    queues: dict[str, list[str]] = {"train": [], "eval": []}
    for n in first:
        queues[by[n].queue].append(n)
    enqueued = set(first)
    workers = [["train", None, 0.0] for _ in range(trainers)] + [
        ["eval", None, 0.0] for _ in range(evaluators)
    ]
    done: set[str] = set()
    now, idle = 0.0, 0.0
    while len(done) < len(tasks):
        for w in workers:  # idle workers take the next task of their queue
            if w[1] is None and queues[w[0]]:
                w[1] = queues[w[0]].pop(0)
                w[2] = by[w[1]].cpu
        busy = [w for w in workers if w[1] is not None]
        if not busy:
            raise RuntimeError(f"deadlock: done {sorted(done)}")
        rate = min(1.0, cores / len(busy))  # each worker runs one thread
        dt = min(w[2] for w in busy) / rate
        now += dt
        idle += max(0.0, cores - len(busy) * rate) * dt
        for w in busy:
            w[2] -= dt * rate
            if w[2] <= 1e-9:
                done.add(w[1])
                w[1] = None
        for t in tasks:  # parts whose inputs are all done get enqueued (once)
            if t.name not in enqueued and all(a in done for a in t.after):
                queues[t.queue].append(t.name)
                enqueued.add(t.name)
    total_cpu = sum(t.cpu for t in tasks)
    return {"wall_s": now, "idle_core_s": idle, "cpu_s": total_cpu, "bound_s": total_cpu / cores}


# Training CPU seconds per task on one thread: steps × ms/step of the demo preset
# (benchmarks/bench_train_step.py, median of 3 interleaved rounds, 2026-12-02 04:52, load
# average 1.9-3.9: under load a step costs somewhat more CPU than idle) + SETUP_S of data setup and
# artifact writing (train() at 10 steps: 1.4-1.8 CPU-s). "before" = main at fd06075, "after" =
# the training-speed changes.
SETUP_S = 1.5
TRAIN_COSTS = {
    "before": {
        "stage1": 3000 * 0.0405 + SETUP_S,
        "stage2": 1200 * 0.0994 + SETUP_S,
        "acgan": 3000 * 0.0399 + SETUP_S,
    },
    "after": {
        "stage1": 3000 * 0.0346 + SETUP_S,
        "stage2": 1200 * 0.0824 + SETUP_S,
        "acgan": 3000 * 0.0332 + SETUP_S,
    },
}


def costs_from_bench(bench: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Training CPU seconds per task, before and after, from bench_train_step's figures."""
    steps = {"stage1": 3000, "stage2": 1200, "acgan": 3000}  # the demo preset
    return {
        v: {k: n * bench[k][f"{v}_ms"] / 1000 + SETUP_S for k, n in steps.items()}
        for v in ("before", "after")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage1", type=float, help="GDGAN stage 1, one split (default: --costs)")
    ap.add_argument("--stage2", type=float, help="GDGAN stage 2 + bundle, one split")
    ap.add_argument("--acgan", type=float, help="ACGAN, one split")
    ap.add_argument("--costs", choices=tuple(TRAIN_COSTS), help="only these training costs (default: both)")
    ap.add_argument("--bench", help="the JSON line of benchmarks/bench_train_step.py: its ms/step figures")
    # CPU seconds per task, measured in the rehearsal of 2026-12-01 (docs/notes/evaluation.md)
    ap.add_argument("--classifier", type=float, default=14.0, help="one classifier (strategy × split)")
    ap.add_argument("--quality", type=float, default=101.0, help="report section: IS, FID/KID, fidelity, ...")
    ap.add_argument("--harness", type=float, default=43.0, help="report section: the quality harness")
    ap.add_argument("--report", type=float, default=9.0, help="report aggregation (bootstrap, HTML)")
    ap.add_argument("--fixed", type=float, default=30.0, help="stack start, phantom, 16 images (serial)")
    ap.add_argument(
        "--measured",
        type=float,
        default=932.0,
        help="a real make demo's wall seconds with the 'before' costs and the 'new' schedule "
        "(2026-12-02 03:26, idle VM): scales every modelled demo wall to it (0 = off)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="trainers and evaluators each (gdgan demo)")
    ap.add_argument("--cores", type=float, default=2.0)
    a = ap.parse_args()
    evals = {k: getattr(a, k) for k in ("classifier", "quality", "harness", "report")}
    if a.bench:
        TRAIN_COSTS.update(costs_from_bench(json.loads(Path(a.bench).read_text().strip().splitlines()[-1])))
    print(
        "| training costs | schedule | evaluation wall (s) | idle core-s | CPU s | CPU s / cores "
        "| demo wall (min) |"
    )
    print("|---|---|---|---|---|---|---|")
    res = {}
    for costs_name in (a.costs,) if a.costs else tuple(TRAIN_COSTS):
        train = dict(TRAIN_COSTS[costs_name])
        train.update({k: getattr(a, k) for k in train if getattr(a, k) is not None})
        for kind in ("old", "new", "split"):
            tasks, first = build(kind, a.repeats, {**train, **evals})
            r = simulate(tasks, first, a.workers, a.workers, a.cores)
            res[costs_name, kind] = r
            print(
                f"| {costs_name} ({train['stage1']:.0f} + {train['stage2']:.0f} / {train['acgan']:.0f}) "
                f"| {kind} | {r['wall_s']:.0f} | {r['idle_core_s']:.0f} | {r['cpu_s']:.0f} | "
                f"{r['bound_s']:.0f} | {(r['wall_s'] + a.fixed) / 60:.1f} |"
            )
    for costs_name in (a.costs,) if a.costs else tuple(TRAIN_COSTS):
        new, split = res[costs_name, "new"]["wall_s"], res[costs_name, "split"]["wall_s"]
        print(f"\n{costs_name}: split / new wall {split / new:.3f}", end="")
    if not a.costs:
        ratio = res["after", "new"]["wall_s"] / res["before", "new"]["wall_s"]
        print(f"\nnew schedule, after / before training costs: {ratio:.3f}")
        if a.measured:
            # the model leaves out what a real stack adds (4 processes on 2 cores, Celery, Redis,
            # heartbeats, the evaluators' own threads): scale by the one real run it reproduces
            scale = a.measured / (res["before", "new"]["wall_s"] + a.fixed)
            print(f"\nscaled to the measured {a.measured:.0f} s (x{scale:.3f}):")
            for (costs_name, kind), r in res.items():
                print(f"  {costs_name:6s} {kind:5s} {(r['wall_s'] + a.fixed) * scale:5.0f} s")
    print()


if __name__ == "__main__":
    main()
