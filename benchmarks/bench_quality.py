"""Cost of the quality harness at demo size, in CPU seconds (robust on a shared machine).

One run measures, side by side: training the judge (once per dataset + split), scoring one
GDGAN (stage 1 + stage 2) with the cached judge, scoring a GDGAN and an ACGAN together, and one
training-curve point (``quality_n`` images), plus the ratio of scoring to judge training. The
models are trained here with the ``demo`` training preset unless ids are given.

Usage: python benchmarks/bench_quality.py [--n 6000] [--size 64] [--steps 300] [--score-n 500]
       [--gdgan ID --acgan ID --store file:///path]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np
import torch
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.data.splits import patient_split
from gdgan.evaluation.harness import real_reference, score_generators
from gdgan.evaluation.judge import JUDGE_PRESETS, get_judge
from gdgan.store import open_store
from gdgan.training.api import train
from gdgan.training.sampling import load_generator


def cpu(fn: Any) -> tuple[Any, float, float]:
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--score-n", type=int, default=500)
    ap.add_argument("--curve-n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--store", default=None)
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--gdgan", default=None)
    ap.add_argument("--acgan", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    store = open_store(a.store or f"file://{tempfile.mkdtemp(prefix='bench-quality-')}")
    if a.dataset:
        from gdgan.data.dataset import load_dataset

        ds = load_dataset(store, a.dataset)
    else:
        ds = make_phantom(PhantomConfig(n=a.n, size=a.size, seed=0))
        ds.save(store)
    split = patient_split(ds.labels["patient_id"], 0, official_split=ds.labels.get("official_split"))
    ids = {"gdgan": a.gdgan, "acgan": a.acgan}
    for kind in ("gdgan", "acgan"):
        if not ids[kind]:
            r = train(kind, ds, store=store, preset="demo", overrides={"steps": a.steps}, split_seed=0)
            ids[kind] = r.model_id
    judge, judge_cpu, judge_wall = cpu(lambda: get_judge(store, ds, split, JUDGE_PRESETS["demo"]))
    gd, ac = (
        load_generator(store, ids["gdgan"], device="cpu"),
        load_generator(store, ids["acgan"], device="cpu"),
    )
    _, one_cpu, one_wall = cpu(
        lambda: score_generators(judge, None, gd, None, ds=ds, split=split, n=a.score_n)
    )
    q2, two_cpu, two_wall = cpu(
        lambda: score_generators(judge, None, gd, ac, ds=ds, split=split, n=a.score_n)
    )
    ref = real_reference(judge, ds, split, a.curve_n)
    _, pt_cpu, pt_wall = cpu(
        lambda: score_generators(judge, None, gd, None, ds=ds, split=split, n=a.curve_n, reference=ref)
    )
    load = float(np.round(__import__("os").getloadavg()[0], 2))
    print(
        json.dumps(
            {
                "dataset": {"n": len(ds), "size": ds.size, **split.sizes()},
                "threads": a.threads,
                "load_average_1min": load,
                "judge_train": {
                    "cpu_s": round(judge_cpu, 1),
                    "wall_s": round(judge_wall, 1),
                    "test": judge.summary["test"],
                },
                "score_gdgan": {"n": a.score_n, "cpu_s": round(one_cpu, 1), "wall_s": round(one_wall, 1)},
                "score_gdgan_acgan": {
                    "n": a.score_n,
                    "cpu_s": round(two_cpu, 1),
                    "wall_s": round(two_wall, 1),
                },
                "curve_point_stage2": {
                    "n": a.curve_n,
                    "cpu_s": round(pt_cpu, 1),
                    "wall_s": round(pt_wall, 1),
                },
                "ratio_score_gdgan_to_judge_train": round(one_cpu / judge_cpu, 3) if judge_cpu else None,
                "headline": q2.headline(),
                "ceiling": q2.ceiling,
                "model_ids": ids,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
