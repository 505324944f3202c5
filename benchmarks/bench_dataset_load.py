"""Dataset load time: a 112,120-image 64-px dataset artifact vs decoding the PNGs naively.

The dataset artifact is one uint8 ``.npy`` (memory-mapped) plus a label ``.npz``; loading it
means reading the manifest, verifying sha256 and mapping the file. The naive way (the authors'
loader) decodes a PNG per image. Images are phantoms (realistic PNG content), tiled to NIH's
112,120 images for the array; the PNG path decodes ``--naive-n`` files and extrapolates
linearly to the full count (it is a per-file loop). The page cache is warm for both.

Usage: python benchmarks/bench_dataset_load.py [--n 112120] [--size 64] [--naive-n 5000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from gdgan.data.dataset import ImageDataset, load_dataset
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.store.local import LocalStore
from PIL import Image


def tile_dataset(base: ImageDataset, n: int) -> ImageDataset:
    reps = -(-n // len(base))
    idx = np.tile(np.arange(len(base)), reps)[:n]
    labels = {k: v[idx] for k, v in base.labels.items()}
    labels["patient_id"] = labels["patient_id"] + np.repeat(np.arange(reps), len(base))[:n] * 100_000
    return ImageDataset(images=np.ascontiguousarray(base.images[idx]), labels=labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=112_120)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--naive-n", type=int, default=5000)
    args = ap.parse_args()

    base = make_phantom(PhantomConfig(n=min(args.naive_n, args.n), size=args.size, seed=0))
    ds = tile_dataset(base, args.n)
    with tempfile.TemporaryDirectory(prefix="gdgan-bench-load-") as tmp:
        store = LocalStore(Path(tmp) / "store", cache_dir=Path(tmp) / "cache")
        t = time.perf_counter()
        m = ds.save(store)
        t_save = time.perf_counter() - t
        del ds

        t = time.perf_counter()
        lazy = load_dataset(store, m.id, mmap=True)
        t_mmap = time.perf_counter() - t
        import torch

        t = time.perf_counter()
        tensor = torch.from_numpy(np.array(lazy.images))  # one (N, H, W) uint8 tensor: reads every page
        t_tensor = time.perf_counter() - t
        assert tensor.shape == (args.n, args.size, args.size)
        t = time.perf_counter()
        eager = load_dataset(store, m.id, mmap=False)
        t_eager = time.perf_counter() - t
        assert eager.images.shape[0] == args.n

        png_dir = Path(tmp) / "png"
        png_dir.mkdir()
        paths = []
        for i in range(len(base)):
            p = png_dir / f"{i:08d}.png"
            buf = io.BytesIO()
            Image.fromarray(base.images[i]).save(buf, "PNG")
            p.write_bytes(buf.getvalue())
            paths.append(p)
        for p in paths:
            p.read_bytes()  # warm cache
        t = time.perf_counter()
        out = np.empty((len(paths), args.size, args.size), np.uint8)
        for i, p in enumerate(paths):
            out[i] = np.asarray(Image.open(p).convert("L"))
        t_png = time.perf_counter() - t
        t_png_full = t_png * args.n / len(paths)

    mb = m.total_bytes / 1e6
    print(f"\n{args.n:,} images of {args.size}px ({mb:.0f} MB artifact), {os.cpu_count()} CPUs, warm cache")
    print(f"{'method':<58}{'seconds':>9}")
    print(f"{'save as dataset artifact (npy + npz + manifest)':<58}{t_save:>9.2f}")
    print(f"{'load_dataset(mmap=True) (sha256 verified, mapped)':<58}{t_mmap:>9.2f}")
    print(f"{'  + to one torch uint8 tensor (touch every pixel)':<58}{t_tensor:>9.2f}")
    print(f"{'load_dataset(mmap=False) (sha256 verified, read)':<58}{t_eager:>9.2f}")
    naive_label = f"naive: decode {args.n:,} PNGs one by one (from {len(paths):,})"
    print(f"{naive_label:<58}{t_png_full:>9.2f}")
    print(f"speed-up of mmap load + tensor over naive PNG decoding: {t_png_full / (t_mmap + t_tensor):.0f}x")
    print(
        json.dumps(
            {
                "n": args.n, "size": args.size, "artifact_mb": round(mb, 1), "save_s": round(t_save, 2),
                "load_mmap_s": round(t_mmap, 3), "to_tensor_s": round(t_tensor, 3),
                "load_eager_s": round(t_eager, 3), "naive_png_s_extrapolated": round(t_png_full, 2),
                "naive_png_files": len(paths), "loadavg": round(os.getloadavg()[0], 1),
            }
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
