"""GPU training throughput: images/s and peak memory for stage 1, stage 2 and ACGAN at 64/128 px.

One short run for a GPU machine (a couple of minutes): for each (phase, size) it times the
real training step (``gdgan.training.loop`` phases, bf16 autocast with the gradient penalty in
fp32, channels-last) after a warm-up, on random uint8 data already on the device.

    python benchmarks/gpu_bench.py                 # on a CUDA machine: paper widths, batch 64
    python benchmarks/gpu_bench.py --smoke         # anywhere (CPU): tiny widths, 2 steps, 32 px

Prints one JSON object (and writes it to --out if given).
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
    name: str, size: int, batch: int, n_critic: int, ngf: int, steps: int, warmup: int, device: torch.device
) -> dict[str, Any]:
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
    rows, noise = make_generators(0, device)

    def step() -> None:
        for _ in range(n_critic):
            b = Batch(*data.batch(batch, rows))
            with _autocast(device, cfg):
                loss, _ = ph.critic_loss(b, noise)
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
        b = Batch(*data.batch(batch, rows))
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
    a = ap.parse_args()
    if a.smoke:
        a.sizes, a.batch, a.n_critic, a.ngf, a.steps, a.warmup = "32", 4, 1, 8, 2, 1
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
    text = json.dumps(report, indent=1)
    if a.out:
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
