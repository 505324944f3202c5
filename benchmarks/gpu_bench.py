"""One short GPU run: throughput of every phase, then the ``paper`` preset's quality curve.

1. **Throughput** — images/s and peak memory for stage 1, stage 2 and ACGAN at 64/128 px: the
   real training step (``gdgan.training.loop`` phases, bf16 autocast with the gradient penalty
   in fp32, channels-last) timed after a warm-up on random uint8 data already on the device.
2. **Quality** (``--minutes`` > 0) — the ``paper`` preset (paper widths, WGAN-GP, batch 64,
   n_critic 5) trained on a phantom of NIH's size (112,120 images, NIH's label mix) for the
   given minutes (stage 1 then stage 2, 60/40), scored every ``--every-s`` seconds by
   ``bench_recipe``'s judge (trained on the real phantom training split): gender / view
   accuracy, Cardiomegaly AUC and measured-CTR shares, relative FD, precision / recall.
   ``--recipes`` adds others (e.g. ``modern-gpu``) side by side.
3. **Data parallel** (``--ddp``, on by default) — the stage-1 step under DDP exactly as the
   training loop wraps it (:mod:`gdgan.training.distributed`), global batch fixed: 2 GPUs vs
   1 GPU when the machine has two, else 1 GPU vs the CPU (``--smoke``: 2 CPU ranks on gloo vs
   1 CPU process, which only checks the path). Ranks are real processes (NCCL / gloo).
4. **Generator service** (``--gen-clients``, 16 by default) — ``bench_generator``'s load at 16
   concurrent clients with micro-batching on vs off, the service on this device.

    python benchmarks/gpu_bench.py --out gpu.json            # CUDA: ~2 min throughput + 4 min quality
    python benchmarks/gpu_bench.py --smoke                   # anywhere (CPU): tiny, seconds

Prints one JSON object (and writes it, curves.png and the sample grids to --out's folder).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gdgan.models.acgan import build_acgan
from gdgan.models.gdgan import GanConfig, build_stage1, build_stage2
from gdgan.training import distributed as dd
from gdgan.training.data import TrainData
from gdgan.training.loop import _autocast, make_generators
from gdgan.training.losses import LossWeights
from gdgan.training.phases import Batch, ConditionalPhase, Stage2Phase
from gdgan.training.presets import get_config


def _phase(name: str, gan: GanConfig, device: torch.device, channels_last: bool) -> Any:
    w = LossWeights()
    if name == "stage2":
        g1, d1 = build_stage1(gan)
        g2, d2 = build_stage2(gan)
        mods = [g1, d1, g2, d2]
        ph: Any = Stage2Phase(g2, d2, g1, d1, gan.nz, w)
    else:
        G, D = (build_acgan if name == "acgan" else build_stage1)(gan)
        mods = [G, D]
        ph = ConditionalPhase(name, G, D, gan.nz, w, use_detail=name == "acgan")
    for m in mods:
        m.to(device)
        if channels_last:
            m.to(memory_format=torch.channels_last)
    return ph


def bench(
    name: str,
    size: int,
    batch: int,
    n_critic: int,
    ngf: int,
    steps: int,
    warmup: int,
    device: torch.device,
    dist: dd.Dist = dd.SINGLE,
) -> dict[str, Any]:
    """One phase's training step timed; under ``dist`` each rank takes ``batch / world`` rows
    and the figure counts the global batch."""
    cfg = get_config(
        "paper", {"size": size, "batch_size": batch, "n_critic": n_critic, "ngf": ngf, "ndf": ngf}
    )
    gan = GanConfig(size=size, ngf=ngf, ndf=ngf)
    cl = device.type == "cuda"
    ph = _phase(name, gan, device, cl)
    n = 4096 if device.type == "cuda" else 64
    rng = np.random.default_rng(0)
    data = TrainData(
        images=torch.from_numpy(rng.integers(0, 256, (n, 1, size, size), dtype=np.uint8)).to(device),
        general=torch.from_numpy(rng.integers(0, 2, (n, 2)).astype(np.float32)).to(device),
        detail=torch.from_numpy((rng.random((n, 14)) < 0.1).astype(np.float32)).to(device),
        channels_last=cl,
    )
    opt_g = torch.optim.Adam(ph.G.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(ph.D.parameters(), lr=cfg.lr, betas=cfg.betas)
    rows, noise = make_generators(dd.rank_seed(0, dist.rank), device)
    D, D_ddp = ph.D, dd.wrap(ph.D, dist)  # as the training loop wraps them
    ph.G = dd.wrap(ph.G, dist)
    local = dd.local_batch(batch, dist)

    def step() -> None:
        for _ in range(n_critic):
            b = Batch(*data.batch(local, rows))
            ph.D = D_ddp
            with _autocast(device, cfg):
                loss, _ = ph.critic_loss(b, noise)
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
        b = Batch(*data.batch(local, rows))
        ph.D = D
        ph.D.requires_grad_(False)
        with _autocast(device, cfg):
            loss, _ = ph.generator_loss(b, noise)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        ph.D.requires_grad_(True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    out = {
        "phase": name,
        "size": size,
        "batch": batch,
        "n_critic": n_critic,
        "ngf": ngf,
        "steps": steps,
        "world": dist.world,
        "images_per_s": round(steps * batch * n_critic / wall, 1),
        "step_ms": round(1000 * wall / steps, 2),
    }
    if device.type == "cuda":
        out["peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run: checks the script works")
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--minutes", type=float, default=4.0, help="quality run length; 0 = skip it")
    ap.add_argument("--n", type=int, default=112_120, help="phantom images for the quality run (NIH's count)")
    ap.add_argument("--recipes", default="paper-gpu", help="bench_recipe recipes to train, comma-separated")
    ap.add_argument("--every-s", type=float, default=20.0, help="seconds between quality scorings")
    ap.add_argument("--no-ddp", dest="ddp", action="store_false", help="skip the data-parallel part")
    ap.add_argument("--gen-clients", type=int, default=16, help="generator load clients; 0 = skip")
    ap.add_argument("--gen-requests", type=int, default=8, help="requests per generator client")
    a = ap.parse_args()
    if a.smoke:
        a.sizes, a.batch, a.n_critic, a.ngf, a.steps, a.warmup = "32", 4, 1, 8, 2, 1
        a.n, a.minutes, a.every_s = 300, 0.02, 0.4
        a.gen_requests = 1
        device = torch.device("cpu")
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info: dict[str, Any] = {"device": device.type, "torch": torch.__version__}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        info["gpu"] = torch.cuda.get_device_name(0)
    results = [
        bench(ph, int(s), a.batch, a.n_critic, a.ngf, a.steps, a.warmup, device)
        for s in a.sizes.split(",")
        for ph in ("stage1", "stage2", "acgan")
    ]
    report = {**info, "results": results}
    if a.ddp:
        report["ddp"] = ddp_part(a, device)
    if a.gen_clients > 0:
        report["generator"] = generator_part(a, device)
    if a.minutes > 0:
        report["quality"] = quality(a, device)
    text = json.dumps(report, indent=1)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    print(text)


NOT_MEASURED = "not measured"


def _ddp_rank(rank: int, world: int, port: int, device_type: str, a: argparse.Namespace, out: str) -> None:
    """One rank of the data-parallel timing (a process of its own, like a torchrun rank)."""
    import os

    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank)}
        | {"WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)}
    )
    torch.set_num_threads(1 if device_type == "cpu" else torch.get_num_threads())
    d, dev = dd.setup(device_type)
    size = int(a.sizes.split(",")[0])
    r = bench("stage1", size, a.batch * 2, a.n_critic, a.ngf, a.steps, a.warmup, torch.device(dev), d)
    if rank == 0:
        Path(out).write_text(json.dumps(r))
    torch.distributed.destroy_process_group()


def _spawn_ranks(world: int, device_type: str, a: argparse.Namespace) -> dict[str, Any]:
    import socket
    import tempfile

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rank0.json"
        mp.spawn(_ddp_rank, args=(world, port, device_type, a, str(out)), nprocs=world, join=True)
        return dict(json.loads(out.read_text()))


def ddp_part(a: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Stage-1 steps/s at one global batch (2 x --batch): 2 GPUs vs 1, else 1 GPU vs the CPU."""
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    size = int(a.sizes.split(",")[0])

    def one(dev: torch.device, steps: int = a.steps) -> dict[str, Any]:
        return bench("stage1", size, a.batch * 2, a.n_critic, a.ngf, steps, a.warmup, dev)

    if gpus >= 2:
        rows = [
            {"setup": "2 GPUs, DDP (NCCL)", **_spawn_ranks(2, "cuda", a)},
            {"setup": "1 GPU", **one(device)},
        ]
    elif gpus == 1:
        rows = [
            {"setup": "2 GPUs, DDP (NCCL)", "images_per_s": NOT_MEASURED},
            {"setup": "1 GPU", **one(device)},
            {"setup": "CPU", **one(torch.device("cpu"), max(2, a.steps // 10))},
        ]
    else:  # no GPU: the CPU / gloo path, so the script is known to work
        rows = [
            {"setup": "2 GPUs, DDP (NCCL)", "images_per_s": NOT_MEASURED},
            {"setup": "1 GPU", "images_per_s": NOT_MEASURED},
            {"setup": "2 CPU ranks, DDP (gloo)", **_spawn_ranks(2, "cpu", a)},
            {"setup": "1 CPU process", **one(device)},
        ]
    measured = [r for r in rows if isinstance(r["images_per_s"], float)]
    return {
        "global_batch": a.batch * 2,
        "rows": rows,
        "ratio_first_to_second_measured": round(measured[0]["images_per_s"] / measured[1]["images_per_s"], 2),
    }


def generator_part(a: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """``bench_generator``'s load (``--gen-clients`` concurrent clients, n=1 and n=16) with
    micro-batching on vs off, the service on ``device``."""
    import asyncio
    import statistics
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_generator import load, make_model, serve
    from gdgan.localstack.stack import stop_process

    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-gen-") as tmp:
        root = Path(tmp)
        model = make_model(root, "tiny" if a.smoke else "demo")
        servers = {b: serve(root, b, 2, 64, device=device.type, timeout=180) for b in (True, False)}
        try:
            for n in (1, 16):
                for b, (_, url) in servers.items():
                    r = asyncio.run(load(url, model, n, a.gen_clients, a.gen_requests))
                    rows.append({"batching": b, "n": n, **{k: round(v, 1) for k, v in r.items()}})
        finally:
            for proc, _ in servers.values():
                stop_process(proc)
    ratio = {
        f"n={n}": round(
            statistics.mean(r["images_per_s"] for r in rows if r["n"] == n and r["batching"])
            / statistics.mean(r["images_per_s"] for r in rows if r["n"] == n and not r["batching"]),
            2,
        )
        for n in (1, 16)
    }
    return {"device": device.type, "clients": a.gen_clients, "rows": rows, "on_off_ratio": ratio}


def quality(a: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Train the recipes for ``a.minutes`` on an NIH-size phantom, scoring as it goes."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_recipe import _plot, run_recipe
    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.data.splits import patient_split
    from gdgan.imaging import grid_png_bytes
    from recipe_judge import train_judge

    t0 = time.perf_counter()
    ds = make_phantom(PhantomConfig(n=a.n, size=64, seed=0))
    split = patient_split(ds.labels["patient_id"], 0)
    phantom_s = time.perf_counter() - t0
    test = split.test[:4000]  # scoring set: enough for FD / precision-recall at n_eval
    extra: dict[str, Any] = {"ngf": 8, "ndf": 8, "batch_size": 4, "size": 32} if a.smoke else {}
    t0 = time.perf_counter()
    judge = train_judge(ds, split.train[:20_000], test, extra.get("size", 64), epochs=1 if a.smoke else 4)
    judge_s = time.perf_counter() - t0
    budget = a.minutes * 60
    out_dir = a.out.parent if a.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in [r.strip() for r in a.recipes.split(",") if r.strip()]:
        r = run_recipe(
            name, ds, split.train, test, judge, 0.6 * budget, 0.4 * budget, a.every_s, extra,
            64 if a.smoke else 512, device.type,
        )  # fmt: skip
        grid = np.asarray(r.pop("grid"), np.uint8)
        if out_dir:
            (out_dir / f"gpu_grid_{name}.png").write_bytes(grid_png_bytes(grid, None, ncol=8, scale=2))
        runs.append(r)
    if out_dir:
        _plot(runs, out_dir / "gpu_curves.png")
    return {
        "n_images": a.n,
        "n_train": len(split.train),
        "phantom_s": round(phantom_s, 1),
        "judge_s": round(judge_s, 1),
        "ceiling": judge.ceiling,
        "recipes": runs,
    }


if __name__ == "__main__":
    main()
