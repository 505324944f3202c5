"""Generation service under load: 16 concurrent clients asking for n=1 and n=16 images, with
micro-batching on (GDGAN_GENERATE_MAX_BATCH=64, MAX_WAIT_MS=10) and off (MAX_BATCH=1: one request
per forward pass). Reports images/s, p50/p99 latency, the on/off ratio, and the service's peak RSS.

The generator is a real uvicorn process over a real local store. Weights do not change the cost of a
forward pass, so the model is the ``demo`` preset's architecture trained for one step.

    .venv/bin/python benchmarks/bench_generator.py [--requests 8] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gdgan.localstack.stack import stop_process
from gdgan.store.local import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test-only stack helper
from svcstack import serve_generator


def make_model(root: Path, preset: str) -> str:
    import torch
    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.training.api import train

    torch.set_num_threads(1)
    store = LocalStore(root / "store", cache_dir=root / "cache")
    ds = make_phantom(PhantomConfig(n=200, size=64, seed=0))
    ds.save(store)
    res = train(
        "gdgan",
        ds,
        store=store,
        preset=preset,
        overrides={"steps": 1, "stage2_steps": 1, "checkpoint_every": 1},
        device="cpu",
    )
    return str(res.model_id)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(
    root: Path, batching: bool, threads: int, max_batch: int = 64, device: str = "cpu", timeout: float = 30
) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        "GDGAN_DEVICE": device,
        "GDGAN_NUM_THREADS": str(threads),
        "GDGAN_LOG_LEVEL": "WARNING",
        "GDGAN_GENERATE_QUEUE_SIZE": "256",
        "GDGAN_GENERATE_MAX_BATCH": str(max_batch) if batching else "1",
        "GDGAN_GENERATE_MAX_WAIT_MS": "10" if batching else "0",
    }
    return serve_generator(root, env, timeout=timeout)


async def load(url: str, model: str, n: int, clients: int, per_client: int) -> dict[str, float]:
    lat: list[float] = []

    async def client(c: httpx.AsyncClient, k: int) -> None:
        for i in range(per_client):
            t0 = time.perf_counter()
            r = await c.post(
                "/v1/generate", json={"model": model, "n": n, "seed": k * 1000 + i, "format": "json"}
            )
            r.raise_for_status()
            lat.append(time.perf_counter() - t0)

    async with httpx.AsyncClient(base_url=url, timeout=300) as c:
        await c.post("/v1/generate", json={"model": model, "n": n, "seed": 0})  # load the model, warm up
        t0 = time.perf_counter()
        await asyncio.gather(*[client(c, k) for k in range(clients)])
        wall = time.perf_counter() - t0
    lat.sort()
    return {
        "images_per_s": clients * per_client * n / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))],
    }


def batches(url: str) -> tuple[float, float]:
    """(forward passes, requests served) so far, from the service's /metrics."""
    count = total = 0.0
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("gdgan_generator_batch_requests_count "):
            count = float(line.split()[1])
        if line.startswith("gdgan_generator_batch_requests_sum "):
            total = float(line.split()[1])
    return count, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=8, help="requests per client")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved on/off rounds (medians reported)")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--max-batch", type=int, default=64, help="GDGAN_GENERATE_MAX_BATCH with batching on")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in the generator")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        root = Path(tmp)
        model = make_model(root, args.preset)
        # both services up at once and the runs interleaved (on, off, on, off, ...): on a shared
        # machine a load spike then hits both modes instead of biasing the ratio
        servers = {b: serve(root, b, args.threads, args.max_batch) for b in (True, False)}
        seen: dict[bool, tuple[float, float]] = {}
        try:
            for n in (1, 16):
                runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
                for _ in range(args.rounds):
                    for b, (_, url) in servers.items():
                        runs[b].append(asyncio.run(load(url, model, n, args.clients, args.requests)))
                for b, (_proc, url) in servers.items():
                    med = {k: statistics.median(r[k] for r in runs[b]) for k in runs[b][0]}
                    count, total = batches(url)
                    c0, t0 = seen.get(b, (0.0, 0.0))
                    seen[b] = (count, total)
                    per_pass = (total - t0) / (count - c0) if count > c0 else float("nan")
                    rows.append({"batching": b, "n": n, **med, "requests_per_pass": per_pass})
            for b, (proc, _) in servers.items():
                for r in rows:
                    if r["batching"] == b:
                        r["peak_rss_mb"] = peak_rss_mb(proc.pid)
        finally:
            for proc, _ in servers.values():
                stop_process(proc)
    by = {(r["batching"], r["n"]): r for r in rows}
    if args.markdown:
        print(
            f"{args.clients} concurrent clients × {args.requests} requests, median of {args.rounds} "
            f"interleaved rounds, {args.preset} generator (64 px), {args.threads} torch threads, "
            f"max batch {args.max_batch} images, CPU\n"
        )
        print("| n per request | batching | images/s | p50 ms | p99 ms | requests per pass | peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['n']} | {'on' if r['batching'] else 'off'} | {r['images_per_s']:.0f} "
                f"| {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['requests_per_pass']:.1f} "
                f"| {r['peak_rss_mb']:.0f} |"
            )
        for n in (1, 16):
            ratio = by[(True, n)]["images_per_s"] / by[(False, n)]["images_per_s"]
            print(f"\nn={n}: batching on/off throughput ratio {ratio:.2f}×", end="")
        print()
    else:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
