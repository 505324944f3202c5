"""Stage-1 training throughput: our in-memory loop vs a naive loop that decodes PNGs every step.

The naive loop reproduces the data path of the authors' code: for every image of every batch
it opens the source PNG (NIH-format files written by ``write_nih_format``, 1024² by default
like the NIH release), converts it to grayscale and resizes it to the training size. Both
loops run the *same* model, batch size, image size and number of steps with the same training
step function; only where the batch comes from differs.

    .venv/bin/python benchmarks/bench_training.py            # 256 images written at 1024², 64 px
    .venv/bin/python benchmarks/bench_training.py --quick    # small, seconds

Prints one JSON object: images/s of both loops and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gdgan.data.phantom import PhantomConfig, make_phantom, write_nih_format
from gdgan.labels import general_matrix
from gdgan.models.gdgan import GanConfig, build_stage1, from_uint8
from gdgan.training.data import TrainData
from gdgan.training.losses import LossWeights
from gdgan.training.phases import Batch, ConditionalPhase
from gdgan.training.presets import get_config
from PIL import Image


def _step(
    phase: ConditionalPhase,
    opt_d: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    batches: list[Batch],
    noise: torch.Generator,
) -> None:
    """One training step: n_critic critic updates + one generator update (as in the loop)."""
    for b in batches[:-1]:
        loss, _ = phase.critic_loss(b, noise)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
    loss, _ = phase.generator_loss(batches[-1], noise)
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()


def _naive_batch(files: list[Path], general: np.ndarray, rows: np.ndarray, size: int) -> Batch:
    """Open, decode, convert and resize every image of the batch (the authors' data path)."""
    imgs = []
    for r in rows:
        with Image.open(files[r]) as im:
            imgs.append(np.asarray(im.convert("L").resize((size, size), Image.Resampling.BILINEAR)))
    x = from_uint8(torch.from_numpy(np.stack(imgs))[:, None])
    g = torch.from_numpy(general[rows])
    return Batch(x, g, torch.zeros(len(rows), 14))


def run(
    n: int, write_size: int, size: int, steps: int, batch: int, n_critic: int, ngf: int
) -> dict[str, float]:
    torch.manual_seed(0)
    ds = make_phantom(PhantomConfig(n=n, size=min(size * 2, 256), seed=0))
    cfg = get_config(
        "demo", {"size": size, "batch_size": batch, "n_critic": n_critic, "ngf": ngf, "ndf": ngf}
    )
    with tempfile.TemporaryDirectory(prefix="gdgan-bench-") as tmp:
        t0 = time.perf_counter()
        csv_path = write_nih_format(ds, tmp, write_size=write_size)
        write_s = time.perf_counter() - t0
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
        files = [Path(tmp) / "images" / r["Image Index"] for r in rows]
        general = general_matrix(
            np.array([r["Patient Gender"] == "F" for r in rows], dtype=np.uint8),
            np.array([r["View Position"] == "AP" for r in rows], dtype=np.uint8),
        )
        results: dict[str, float] = {"png_write_s": round(write_s, 2)}
        for mode in ("naive", "ours"):
            G, D = build_stage1(GanConfig(size=size, ngf=ngf, ndf=ngf))
            phase = ConditionalPhase("stage1", G, D, cfg.nz, LossWeights(), use_detail=False)
            opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
            opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
            noise = torch.Generator().manual_seed(0)
            rowgen = torch.Generator().manual_seed(0)
            data = (
                TrainData.from_dataset(ds, np.arange(n), size, torch.device("cpu"))
                if mode == "ours"
                else None
            )
            rng = np.random.default_rng(0)
            data_s = 0.0
            t0 = time.perf_counter()
            for _ in range(steps):
                td = time.perf_counter()
                if data is not None:
                    batches = [Batch(*data.batch(batch, rowgen)) for _ in range(n_critic + 1)]
                else:
                    batches = [
                        _naive_batch(files, general, rng.integers(0, n, batch), size) for _ in range(n_critic)
                    ]
                    # the generator update needs labels only: no decoding for it
                    g_rows = rng.integers(0, n, batch)
                    batches.append(Batch(batches[0].x, torch.from_numpy(general[g_rows]), batches[0].detail))
                data_s += time.perf_counter() - td
                _step(phase, opt_d, opt_g, batches, noise)
            wall = time.perf_counter() - t0
            imgs = steps * batch * n_critic  # real images through the critic, as the loop counts
            results[f"{mode}_images_per_s"] = round(imgs / wall, 1)
            results[f"{mode}_data_fraction"] = round(data_s / wall, 3)
        results["ratio"] = round(results["ours_images_per_s"] / results["naive_images_per_s"], 2)
    results.update(
        {
            "n": n,
            "write_size": write_size,
            "size": size,
            "steps": steps,
            "batch": batch,
            "n_critic": n_critic,
            "ngf": ngf,
            "threads": torch.get_num_threads(),
        }
    )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--write-size", type=int, default=1024)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-critic", type=int, default=2)
    ap.add_argument("--ngf", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="64 images at 256², 32 px, 3 steps")
    a = ap.parse_args()
    if a.quick:
        a.n, a.write_size, a.size, a.steps, a.batch = 64, 256, 32, 3, 16
    print(json.dumps(run(a.n, a.write_size, a.size, a.steps, a.batch, a.n_critic, a.ngf), indent=1))


if __name__ == "__main__":
    main()
