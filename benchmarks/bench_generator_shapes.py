"""Leak or allocator? Forward passes of every batch size from 1 to 64 on a GDGAN and an ACGAN, four
rounds in one process (no HTTP), with the RSS after each round; then glibc's ``malloc_trim(0)``;
then rounds of one size. A leak grows every round; memory that glibc keeps after the first round of
new sizes is flat from round 2 on, and ``malloc_trim`` hands its free part back.

    .venv/bin/python benchmarks/bench_generator_shapes.py [--root DIR]   (DIR: a bench_soak --root)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from bench_soak import prepared_models, rss_mb
from gdgan.memory import trim
from gdgan.store.local import LocalStore
from gdgan.training.sampling import load_generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="gdgan-shapes-") as tmp:
        root = args.root or Path(tmp)
        ids = prepared_models(root)
        store = LocalStore(root / "store", cache_dir=root / "cache")
        gens = [load_generator(store, i) for i in ids]
        pid = os.getpid()
        print(f"| after | RSS MB | CPU s |\n|---|---|---|\n| models loaded | {rss_mb(pid):.0f} | |")
        for r in range(args.rounds):
            t = time.process_time()
            for n in range(1, 65):
                for g in gens:
                    g.sample(n, seed=n)
            cpu = time.process_time() - t
            print(f"| round {r + 1}: n = 1..64, both models | {rss_mb(pid):.0f} | {cpu:.0f} |")
        trim()
        print(f"| malloc_trim(0) | {rss_mb(pid):.0f} | |")
        for r in range(2):
            for _ in range(64):
                for g in gens:
                    g.sample(16, seed=1)
            print(f"| n = 16 only, round {r + 1} | {rss_mb(pid):.0f} | |")


if __name__ == "__main__":
    main()
