"""Generator memory per cached model: the figures behind the compose and Kubernetes memory limits.

A real generator process (default settings: GDGAN_MODEL_CACHE_SIZE=4 models) over a local store
holding copies of a GDGAN bundle and an ACGAN of the ``paper`` preset's architecture (the largest
shipped: 64 px, ngf=ndf=64; weights do not change the memory, so one training step is enough and copies
under new ids stand for distinct models). For each model in turn: one request of n=64 (the largest
batch, GDGAN_GENERATE_MAX_BATCH), then the process's RSS. Past the cache size, models are evicted,
so the RSS there is the steady-state ceiling a limit must cover.

    .venv/bin/python benchmarks/bench_generator_memory.py [--models 6] [--preset paper-arch]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import httpx
from bench_soak import rss_mb, serve
from gdgan.localstack.stack import stop_process
from gdgan.store.base import ArtifactStore
from gdgan.store.local import LocalStore


def copy_artifact(store: ArtifactStore, artifact_id: str) -> str:
    """The same files under a new id (same kind, parents and meta): a distinct model to the cache."""
    m = store.manifest(artifact_id)
    with store.writer(m.kind) as w:
        for name in m.files:
            w.put_bytes(name, store.get_bytes(artifact_id, name))
        return w.commit(config=m.config, parents=m.parents, meta=m.meta).id


# the paper preset's architecture on the demo preset's schedule (paper sets epochs, which would
# override a one-step run): 64 px, ngf = ndf = 64
ARCH = {"paper-arch": {"size": 64, "ngf": 64, "ndf": 64}}


def make_models(root: Path, preset: str, count: int) -> list[tuple[str, str]]:
    import torch
    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.training.api import train

    torch.set_num_threads(1)
    store = LocalStore(root / "store", cache_dir=root / "cache")
    base_preset = "demo" if preset in ARCH else preset
    ds = make_phantom(PhantomConfig(n=200, size=64, seed=0))
    ds.save(store)
    # weights do not change the memory: one step of each stage, and no epochs-derived length
    fast = {"steps": 1, "stage2_steps": 1, "checkpoint_every": 1, **ARCH.get(preset, {})}
    base = [
        (k, str(train(k, ds, store=store, preset=base_preset, overrides=fast, device="cpu").model_id))
        for k in ("gdgan", "acgan")
    ]
    out = list(base)
    while len(out) < count:
        kind, mid = base[len(out) % 2]
        out.append((kind, copy_artifact(store, mid)))
    return out[:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=6, help="distinct models requested in turn")
    ap.add_argument("--preset", default="paper-arch", help="a training preset, or paper-arch")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gdgan-genmem-") as tmp:
        root = Path(tmp)
        models = make_models(root, args.preset, args.models)
        proc, url = serve(root, 1)
        try:
            rows = [("started", "", rss_mb(proc.pid))]
            with httpx.Client(base_url=url, timeout=600) as c:
                for i, (kind, mid) in enumerate(models, 1):
                    r = c.post("/v1/generate", json={"model": mid, "n": 64, "seed": i, "format": "zip"})
                    r.raise_for_status()
                    rows.append((f"model {i} ({kind})", mid, rss_mb(proc.pid)))
        finally:
            stop_process(proc)
    print(
        f"generator RSS per cached model, preset {args.preset!r}, one n=64 request per model, CPU, "
        f"default cache of 4 models; load average {os.getloadavg()[0]:.1f}"
    )
    print("| after | RSS MB | + MB |")
    print("|---|---|---|")
    prev = rows[0][2]
    for what, _mid, rss in rows:
        print(f"| {what} | {rss:.0f} | {rss - prev:+.0f} |")
        prev = rss


if __name__ == "__main__":
    main()
