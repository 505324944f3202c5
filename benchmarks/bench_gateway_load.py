"""Gateway under load while a training job runs: an open-loop 200 job-status polls per second plus 50
open SSE streams on the same job. Reports the polls' p50/p99/max latency, the rate reached, errors,
the SSE events delivered, and the gateway's RSS. Loopback only; the whole stack is real
(``tests/svcstack.py``'s ``start_stack``: Redis, gateway, generator, a trainer, an evaluator).

    PYTHONPATH=shared:. .venv/bin/python benchmarks/bench_gateway_load.py [--seconds 60] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gdgan.localstack.servers import RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test-only stack helper
from svcstack import start_stack, wait_job


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, job_id: str, rate: float, streams: int, seconds: float) -> dict[str, float]:
    lat: list[float] = []
    errors = {"poll": 0, "sse": 0}
    events = [0] * streams
    deadline = time.perf_counter() + seconds

    async def poll(c: httpx.AsyncClient) -> None:
        t0 = time.perf_counter()
        try:
            r = await c.get(f"/v1/jobs/{job_id}")
            r.raise_for_status()
            lat.append(time.perf_counter() - t0)
        except httpx.HTTPError:
            errors["poll"] += 1

    async def sse(c: httpx.AsyncClient, k: int) -> None:
        try:
            async with c.stream("GET", f"/v1/jobs/{job_id}/events") as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("event:"):
                        events[k] += 1
                    if time.perf_counter() > deadline:
                        return
        except httpx.HTTPError:
            errors["sse"] += 1

    limits = httpx.Limits(max_connections=streams + 400, max_keepalive_connections=streams + 100)
    async with (
        httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as polls,
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=None), limits=limits) as subs,
    ):
        readers = [asyncio.create_task(sse(subs, k)) for k in range(streams)]
        await asyncio.sleep(1.0)  # streams open first
        pending = set()
        t0 = time.perf_counter()
        sent = 0
        while time.perf_counter() < deadline:
            due = t0 + sent / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            pending.add(asyncio.create_task(poll(polls)))
            sent += 1
            pending = {t for t in pending if not t.done()}
        wall = time.perf_counter() - t0
        await asyncio.gather(*pending)
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    lat.sort()
    return {
        "polls": len(lat),
        "rate": len(lat) / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))],
        "max_ms": 1000 * lat[-1],
        "poll_errors": errors["poll"],
        "sse_errors": errors["sse"],
        "sse_events": sum(events),
        "streams_with_events": sum(1 for e in events if e),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=200.0, help="status polls per second")
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gdgan-gwload-") as tmp:
        home = Path(tmp)
        with RedisServer(dir=home / "redis") as redis:
            stack = start_stack(home, redis_url=redis.url, env={"GDGAN_JOB_PROGRESS_INTERVAL_S": "0.5"})
            try:
                url = stack.cfg.gateway_url
                api = httpx.Client(base_url=url, timeout=60)
                r = api.post(
                    "/v1/datasets", json={"source": "phantom", "n": 400, "size": 32, "seed": 1}
                ).json()
                assert wait_job(url, r["job_id"], 300)["status"] == "succeeded"
                body = {
                    "dataset_id": r["dataset_id"],
                    "model": "acgan",
                    "preset": "tiny",
                    "overrides": {"steps": 100000},
                }
                job = api.post("/v1/jobs/train", json=body).json()["job_id"]
                while api.get(f"/v1/jobs/{job}").json()["status"] != "running":
                    time.sleep(0.2)
                gw = next(s for s in stack.services if s.name == "gateway")
                assert gw.proc is not None
                rss0 = rss_mb(gw.proc.pid)
                res = asyncio.run(load(url, job, args.rate, args.streams, args.seconds))
                rss1 = rss_mb(gw.proc.pid)
                api.post(f"/v1/jobs/{job}/cancel")
            finally:
                stack.stop()
    print(
        f"{args.rate:g} polls/s target + {args.streams} SSE streams for {args.seconds:g} s while a training "
        f"job runs; 2-core VM, load average {os.getloadavg()[0]:.1f}"
    )
    row = {**res, "gateway_rss_mb_before": rss0, "gateway_rss_mb_after": rss1}
    if args.markdown:
        print("| " + " | ".join(row) + " |")
        print("|" + "---|" * len(row))
        print("| " + " | ".join(f"{v:.0f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    else:
        for k, v in row.items():
            print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
