"""Generator soak: 32 concurrent clients for a fixed time, mixed n (1-64) and mixed models (a GDGAN and
an ACGAN), against a real uvicorn generator with its default settings (queue, batch, wait).

Per window (default one minute): requests, images/s, p50/p99 latency, 5xx, backpressure 503s, and the
service's RSS at the window's end. A leak shows as RSS growing window after window; a flat RSS after
the first window (models loaded, allocator warm) is the pass condition. Loopback only.

    .venv/bin/python benchmarks/bench_soak.py [--minutes 10] [--clients 32] [--window 60] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from bench_generator import make_model, serve_generator
from gdgan.localstack.stack import stop_process

N_CHOICES = (1, 2, 4, 8, 16, 32, 64)


def make_acgan(root: Path) -> str:
    from gdgan.data.dataset import load_dataset
    from gdgan.store.local import LocalStore
    from gdgan.training.api import train

    store = LocalStore(root / "store", cache_dir=root / "cache")
    ds = load_dataset(store, store.list("dataset")[0].id)
    res = train(
        "acgan", ds, store=store, preset="demo", overrides={"steps": 1, "checkpoint_every": 1}, device="cpu"
    )
    return str(res.model_id)


def prepared_models(root: Path) -> list[str]:
    """A GDGAN and an ACGAN (demo architecture): the ones already in ``root`` or two new ones."""
    from gdgan.store.local import LocalStore

    store_dir = root / "store"
    if store_dir.is_dir():
        store = LocalStore(store_dir, cache_dir=root / "cache")
        found = [store.latest("gdgan"), store.latest("acgan")]
        if all(found):
            return [m.id for m in found if m]
    return [make_model(root, "demo"), make_acgan(root)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(root: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    """The generator with its production defaults; only paths, device and threads are set."""
    return serve_generator(root, {"GDGAN_NUM_THREADS": str(threads), "GDGAN_LOG_LEVEL": "WARNING"})


async def soak(
    url: str,
    pid: int,
    models: list[str],
    clients: int,
    seconds: float,
    window: float,
    n_choices: tuple[int, ...] = N_CHOICES,
) -> list[dict]:
    rows: list[dict] = []
    cur: dict = {"lat": [], "images": 0, "5xx": 0, "503": 0, "errors": 0}
    t_start = time.perf_counter()
    deadline = t_start + seconds

    async def client(c: httpx.AsyncClient, k: int) -> None:
        rnd = random.Random(k)
        i = 0
        while time.perf_counter() < deadline:
            body = {
                "model": rnd.choice(models),
                "n": rnd.choice(n_choices),
                "seed": k * 100_000 + i,
                "format": "zip",
            }
            i += 1
            t0 = time.perf_counter()
            try:
                r = await c.post("/v1/generate", json=body)
            except httpx.HTTPError:
                cur["errors"] += 1
                continue
            if r.status_code == 503:
                cur["503"] += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            if r.status_code >= 500:
                cur["5xx"] += 1
                continue
            r.raise_for_status()
            cur["lat"].append(time.perf_counter() - t0)
            cur["images"] += body["n"]

    async def windows() -> None:
        nonlocal cur
        w0 = time.perf_counter()
        while time.perf_counter() < deadline:
            await asyncio.sleep(min(window, max(0.0, deadline - time.perf_counter())))
            done, cur = cur, {"lat": [], "images": 0, "5xx": 0, "503": 0, "errors": 0}
            w1 = time.perf_counter()
            lat = sorted(done["lat"])
            rows.append(
                {
                    "minute": len(rows) + 1,
                    "requests": len(lat),
                    "images_per_s": done["images"] / (w1 - w0),
                    "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
                    "p99_ms": 1000 * lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
                    if lat
                    else float("nan"),
                    "5xx": done["5xx"],
                    "503": done["503"],
                    "errors": done["errors"],
                    "rss_mb": rss_mb(pid),
                }
            )
            w0 = w1

    async with httpx.AsyncClient(
        base_url=url, timeout=300, limits=httpx.Limits(max_connections=clients)
    ) as c:
        for m in models:  # load both models first: the soak measures steady state
            (await c.post("/v1/generate", json={"model": m, "n": 1, "seed": 0})).raise_for_status()
        await asyncio.gather(windows(), *[client(c, k) for k in range(clients)])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--window", type=float, default=60.0, help="seconds per reported row")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=list(N_CHOICES),
        help="image counts drawn per request (one value: a fixed n, to tell a leak from fragmentation)",
    )
    ap.add_argument(
        "--root",
        type=Path,
        default=None,
        help="keep the store here and reuse its two models on the next run (default: a temp folder)",
    )
    args = ap.parse_args()
    n_choices = tuple(args.n)
    with contextlib.ExitStack() as stack:
        root = args.root or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gdgan-soak-")))
        models = prepared_models(root)
        proc, url = serve(root, args.threads)
        try:
            rss0 = rss_mb(proc.pid)
            rows = asyncio.run(
                soak(url, proc.pid, models, args.clients, args.minutes * 60, args.window, n_choices)
            )
        finally:
            stop_process(proc)
    print(
        f"{args.clients} clients, {args.minutes:g} min, n in {n_choices}, "
        f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')}, models gdgan+acgan (demo, 64 px), "
        f"{args.threads} torch thread(s), CPU; RSS after start-up {rss0:.0f} MB; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    cols = ["minute", "requests", "images_per_s", "p50_ms", "p99_ms", "5xx", "503", "errors", "rss_mb"]
    if args.markdown:
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
    for r in rows:
        vals = [f"{r[c]:.0f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        print(("| " + " | ".join(vals) + " |") if args.markdown else "  ".join(vals))
    growth = rows[-1]["rss_mb"] - rows[0]["rss_mb"] if len(rows) > 1 else 0.0
    print(f"RSS growth, first to last window: {growth:+.0f} MB; 5xx total {sum(r['5xx'] for r in rows)}")


if __name__ == "__main__":
    main()
