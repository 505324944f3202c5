"""The demo preset against its targets (issue 10 §3), judged by the quality harness.

Trains GDGAN (stage 1, then stage 2) with a training preset on a phantom with NIH's label mix
(the demo's 6,000 images by default), single-threaded, timing each stage in CPU-seconds, then
scores the stage-2 model with ``gdgan.evaluation.quality_run.score_models`` (the cached judge
of that split, trained on real training images only; Cardiomegaly from the true CTR) and
prints each target beside the figure reached.

    python benchmarks/demo_quality.py --out bench-out/demo-quality              # demo preset
    python benchmarks/demo_quality.py --preset demo-paper --out bench-out/dq-paper
    python benchmarks/demo_quality.py --phantom-set label_noise=0.0             # phantom fields (JSON values)
    python benchmarks/demo_quality.py --smoke                                   # seconds
    # reuse a store of an earlier run: its phantom and cached judge; resume a stopped stage 1
    # (its run id) or train stage 2 only on a stored stage-1 model (a same-G1 comparison)
    python benchmarks/demo_quality.py --store DIR --dataset DATASET_ID --resume RUN_ID
    python benchmarks/demo_quality.py --store DIR --dataset DATASET_ID --stage1 MODEL_ID --set focus_weight=5

Writes ``demo_quality.json`` and ``grid_stage2.png`` (rows = (gender, view), columns = seeds,
each without then with Cardiomegaly from the same stage-1 image) to --out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gdgan.data.dataset import load_dataset
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.evaluation.quality_run import score_models
from gdgan.imaging import grid_png_bytes
from gdgan.labels import FINDINGS, GENDERS, VIEWS
from gdgan.store.local import LocalStore
from gdgan.training.api import train
from gdgan.training.presets import get_config, parse_overrides
from gdgan.training.sampling import GROUPS, load_generator

# (headline key, comparison, target) — issue 10 §3
TARGETS = (
    ("gender_accuracy", ">=", 0.85),
    ("view_accuracy", ">=", 0.85),
    ("finding_auc_paired", ">=", 0.90),
    ("finding_auc_independent", ">=", 0.90),
    ("ctr_share_pos", ">=", 0.80),
    ("ctr_share_neg", "<=", 0.20),
    ("relative_fd", "<=", 3.0),
    ("recall", ">=", 0.50),
)


def check(headline: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, op, target in TARGETS:
        v = headline.get(key)
        ok = None if v is None else (v >= target if op == ">=" else v <= target)
        rows.append({"figure": key, "target": f"{op} {target}", "reached": v, "met": ok})
    return rows


def grid(store: LocalStore, model_id: str, k: int = 4) -> tuple[np.ndarray, list[str]]:
    g = load_generator(store, model_id, device="cpu")
    rng = np.random.default_rng(123)
    z = rng.random((len(GROUPS) * k, g.nz), dtype=np.float32)
    general = np.array([GROUPS[i // k] for i in range(len(z))], dtype=np.float32)
    no = np.zeros((len(z), len(FINDINGS)), np.float32)
    yes = no.copy()
    yes[:, FINDINGS.index("Cardiomegaly")] = 1
    a, b = g.generate(z, general, no, 2), g.generate(z, general, yes, 2)
    imgs = np.stack([a, b], 1).reshape(2 * len(z), *a.shape[1:])
    caps = [f"{GENDERS[int(x)]}/{VIEWS[int(y)]} {c}" for x, y in general for c in ("none", "Cardiomegaly")]
    return imgs, caps


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--set", action="append", default=[], help="training override key=value")
    ap.add_argument("--n", type=int, default=6000, help="phantom images (the demo's)")
    ap.add_argument("--phantom-set", action="append", default=[], help="PhantomConfig field=JSON value")
    ap.add_argument("--n-score", type=int, default=500, help="images per harness set")
    ap.add_argument("--out", type=Path, default=Path("bench-out/demo-quality"))
    ap.add_argument("--store", type=Path, help="artifact store dir to use (default: a new temp dir)")
    ap.add_argument("--dataset", help="a stored dataset of --store to reuse (and its cached judge)")
    ap.add_argument("--resume", help="stage-1 run id to resume from its latest checkpoint")
    ap.add_argument("--stage1", help="a stored stage-1 model: train stage 2 only on it")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    overrides: dict[str, Any] = dict(parse_overrides(a.set))
    if a.smoke:
        a.n, a.n_score = 400, 48
        overrides |= {"steps": 3, "stage2_steps": 2, "ngf": 8, "ndf": 8, "batch_size": 8}
    cfg = get_config(a.preset, overrides)
    pkw = {k: json.loads(v) for k, v in (p.split("=", 1) for p in a.phantom_set)}
    store = LocalStore(a.store or Path(tempfile.mkdtemp(prefix="gdgan-dq-")))
    if a.dataset:
        ds = load_dataset(store, a.dataset)
        stored = store.manifest(a.dataset).config or {}
        pkw = {k: v for k, v in stored.items() if k in pkw or k == "label_noise"}
    else:
        ds = make_phantom(PhantomConfig(n=a.n, size=64, seed=0, **pkw))
        ds = load_dataset(store, ds.save(store).id)  # a stored dataset: models and judge name it
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    ids: dict[str, str] = {"stage1": a.stage1} if a.stage1 else {}
    for stage in ("stage1", "stage2"):
        if stage in ids:
            continue
        t, w = time.process_time(), time.perf_counter()
        r = train(stage, ds, store=store, preset=a.preset, overrides=overrides, device="cpu",
                  stage1_model=ids.get("stage1"), run_id=a.resume if stage == "stage1" else None)  # fmt: skip
        cpu[stage], wall[stage] = time.process_time() - t, time.perf_counter() - w
        ids[stage] = r.model_ids[stage]
        print(stage, f"{cpu[stage]:.0f} CPU-s", flush=True)
    t = time.process_time()
    q = score_models(store, [ids["stage2"]], dataset=ds, split_seed=0, n=a.n_score)
    score_cpu = time.process_time() - t
    head = q.headline()["stage2"]
    result = {
        "preset": a.preset,
        "overrides": overrides,
        "config": cfg.to_dict(),
        "phantom": {"n": a.n, **pkw},
        "reused": {
            "store": str(store.root),
            "dataset": a.dataset,
            "resumed_stage1_run": a.resume,
            "stage1_model": a.stage1,
        },
        "model_ids": ids,
        "cpu_s": {k: round(v, 1) for k, v in cpu.items()} | {"both": round(sum(cpu.values()), 1)},
        "wall_s": {k: round(v, 1) for k, v in wall.items()},
        "score_cpu_s": round(score_cpu, 1),
        "headline": head,
        "stage1": q.headline().get("stage1"),
        "ceiling": q.ceiling,
        "targets": check(head),
        "quality": q.to_dict(),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    imgs, caps = grid(store, ids["stage2"])
    (a.out / "grid_stage2.png").write_bytes(grid_png_bytes(imgs, caps, ncol=8, scale=3))
    (a.out / "demo_quality.json").write_text(json.dumps(result, indent=1, default=str))
    for row in result["targets"]:
        v = row["reached"]
        print(f"{row['figure']:26s} {row['target']:>8s}  {'—' if v is None else f'{v:.3f}'}  {row['met']}")
    print(json.dumps({"cpu_s": result["cpu_s"], "score_cpu_s": result["score_cpu_s"]}))
    return result


if __name__ == "__main__":
    main()
