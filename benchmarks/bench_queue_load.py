"""Many small jobs through the REST API: enqueue and dequeue throughput, Redis memory per job record,
status-poll latency under load, and what the retention policy gives back.

The job is the cheapest real kind: a phantom dataset of 16 images of 32 px (an ``ingest`` job on the
``train`` queue), so the figures are about the queue, records and gateway, not the science. The whole
stack is real and on loopback (``tests/svcstack.py``: Redis, gateway, generator, N trainer workers).

Phases, in one run:

1. enqueue ``--jobs`` POST /v1/datasets with ``--concurrency`` clients in flight (open loop), while a
   poller GETs the status of random enqueued jobs at ``--poll-rate`` per second until the queue drained;
2. dequeue: from the records' ``started``/``finished`` times (the workers' own clock);
3. Redis memory: ``INFO memory`` before / with every job queued / with every job finished, and
   ``MEMORY USAGE`` of each per-job key; then, ``GDGAN_JOB_TTL_S`` = ``--ttl`` later, again: the
   retained state against what retention gave back (without it every record stayed for a week).

    nice -n 5 env PYTHONPATH=shared:tests:. .venv/bin/python benchmarks/bench_queue_load.py \\
        [--jobs 1000] [--workers 4] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from gdgan.jobs.celery_app import TRAIN_QUEUE
from gdgan.jobs.records import INDEX, SIBLINGS, _k, record_key
from gdgan.localstack.servers import RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test-only stack helper
from svcstack import TERMINAL, start_stack

BODY = {"source": "phantom", "n": 16, "size": 32}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] if xs else float("nan")


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def statuses(r: redis.Redis, ids: list[str]) -> list[dict[str, Any] | None]:
    raws: list[str | None] = []
    for i in range(0, len(ids), 500):
        raws += r.mget([record_key(j) for j in ids[i : i + 500]])
    return [json.loads(x) if x else None for x in raws]


async def drive(url: str, r: redis.Redis, args: argparse.Namespace) -> dict[str, Any]:
    """Enqueue everything while polling statuses; return when every job ended."""
    ids: list[str] = []
    enq_lat: list[float] = []
    poll_lat: list[float] = []
    errors = {"enqueue": 0, "poll": 0}
    peak = {"llen": 0, "memory": 0}
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=args.concurrency + 20)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        sem = asyncio.Semaphore(args.concurrency)

        async def enqueue(seed: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                try:
                    resp = await c.post("/v1/datasets", json={**BODY, "seed": seed})
                    resp.raise_for_status()
                    ids.append(resp.json()["job_id"])
                    enq_lat.append(time.perf_counter() - t0)
                except httpx.HTTPError:
                    errors["enqueue"] += 1

        async def poller() -> None:
            rnd = random.Random(0)
            t0, sent, tasks = time.perf_counter(), 0, set()

            async def one(job_id: str) -> None:
                s = time.perf_counter()
                try:
                    (await c.get(f"/v1/jobs/{job_id}")).raise_for_status()
                    poll_lat.append(time.perf_counter() - s)
                except httpx.HTTPError:
                    errors["poll"] += 1

            while not done.is_set():
                await asyncio.sleep(max(0.0, t0 + sent / args.poll_rate - time.perf_counter()))
                sent += 1
                if ids:
                    tasks.add(asyncio.create_task(one(rnd.choice(ids))))
                tasks = {t for t in tasks if not t.done()}
            await asyncio.gather(*tasks)

        async def watcher() -> None:
            while not done.is_set():
                peak["llen"] = max(peak["llen"], int(r.llen(TRAIN_QUEUE)))
                peak["memory"] = max(peak["memory"], used_memory(r))
                await asyncio.sleep(0.5)

        side = [asyncio.create_task(poller()), asyncio.create_task(watcher())]
        t0 = time.perf_counter()
        await asyncio.gather(*(enqueue(i) for i in range(args.jobs)))
        t_enq = time.perf_counter() - t0
        mem_queued = used_memory(r)  # most jobs still queued: records + broker messages
        ended: dict[str, dict[str, Any]] = {}  # kept here: a short --ttl expires records meanwhile
        while len(ended) < len(ids):
            todo = [j for j in ids if j not in ended]
            for j, x in zip(todo, await asyncio.to_thread(statuses, r, todo)):
                if x is None:
                    sys.exit(f"job {j} expired before it was seen finished: raise --ttl")
                if x["status"] in TERMINAL:
                    ended[j] = x
            await asyncio.sleep(1.0)
        recs = [ended[j] for j in ids]
        t_all = time.perf_counter() - t0
        done.set()
        await asyncio.gather(*side)
    return {
        "ids": ids,
        "records": recs,
        "enqueue_s": t_enq,
        "end_to_end_s": t_all,
        "enq_lat": enq_lat,
        "poll_lat": poll_lat,
        "errors": errors,
        "peak": peak,
        "mem_queued": mem_queued,
    }


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def key_bytes(r: redis.Redis, ids: list[str]) -> dict[str, float]:
    """Mean MEMORY USAGE (bytes, SAMPLES 0 = exact) of each per-job key over the jobs that have it."""
    out: dict[str, float] = {}
    for suffix in ("", *SIBLINGS):
        sizes = [r.memory_usage(_k(j, suffix), samples=0) for j in ids]
        got = [s for s in sizes if s]
        if got:
            out[suffix or "record"] = statistics.mean(got)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=16, help="enqueue requests in flight")
    ap.add_argument("--poll-rate", type=float, default=20.0, help="status polls per second meanwhile")
    ap.add_argument("--ttl", type=int, default=180, help="GDGAN_JOB_TTL_S for the run: longer than the drain")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gdgan-qload-") as tmp:
        home = Path(tmp)
        with RedisServer(dir=home / "redis") as server:
            env = {"GDGAN_JOB_TTL_S": str(args.ttl), "GDGAN_JOB_PROGRESS_INTERVAL_S": "0.5"}
            stack = start_stack(home, redis_url=server.url, env=env, trainers=args.workers, evaluators=0)
            try:
                r = redis.Redis.from_url(server.url, decode_responses=True)
                gw = next(s for s in stack.services if s.name == "gateway")
                assert gw.proc is not None
                mem0, gw_cpu0 = used_memory(r), cpu_s(gw.proc.pid)
                res = asyncio.run(drive(stack.cfg.gateway_url, r, args))
                gw_cpu = cpu_s(gw.proc.pid) - gw_cpu0
                load1 = os.getloadavg()
                ids, recs = res["ids"], res["records"]
                mem_done = used_memory(r)
                sizes = key_bytes(r, ids)
                keys_done = int(r.dbsize())
                time.sleep(args.ttl + 2)  # the retention clock of the last job ran out
                httpx.post(
                    stack.cfg.gateway_url + "/v1/datasets", json={**BODY, "seed": 0}
                )  # prunes the index
                mem_expired = used_memory(r)
                left = sum(1 for j in ids if r.exists(record_key(j)))
                index_left = sum(1 for j in ids if r.zscore(INDEX, j) is not None)
                keys_expired = int(r.dbsize())
            finally:
                stack.stop()
    ok = [x for x in recs if x["status"] == "succeeded"]
    starts = [_ts(x["started"]) for x in ok]
    ends = [_ts(x["finished"]) for x in ok]
    n = len(ids)
    dequeue = len(ok) / (max(ends) - min(starts))
    run_p50 = statistics.median(e - s for s, e in zip(starts, ends))
    rows = {
        "jobs enqueued / succeeded": f"{n} / {len(ok)}",
        "enqueue errors / poll errors": f"{res['errors']['enqueue']} / {res['errors']['poll']}",
        "enqueue throughput (jobs/s, REST)": f"{n / res['enqueue_s']:.1f}",
        "enqueue latency p50 / p99 (ms)": f"{1000 * pct(res['enq_lat'], 0.5):.0f} / "
        f"{1000 * pct(res['enq_lat'], 0.99):.0f}",
        "gateway CPU per request (ms)": f"{1000 * gw_cpu / max(1, n + len(res['poll_lat'])):.1f}",
        "dequeue throughput (jobs/s, first start to last finish)": f"{dequeue:.1f}",
        "job run time p50 (s, started to finished)": f"{run_p50:.2f}",
        "end to end (s, first enqueue to last finish)": f"{res['end_to_end_s']:.0f}",
        "peak queue length (LLEN train)": str(res["peak"]["llen"]),
        "status polls / p50 / p99 (ms)": f"{len(res['poll_lat'])} / {1000 * pct(res['poll_lat'], 0.5):.0f} / "
        f"{1000 * pct(res['poll_lat'], 0.99):.0f}",
        "Redis used_memory before (MB)": f"{mem0 / 1e6:.2f}",
        "Redis bytes per job, all queued": f"{(res['mem_queued'] - mem0) / n:.0f}",
        "Redis bytes per job, all finished (retained)": f"{(mem_done - mem0) / n:.0f}",
        "Redis bytes per job, after the TTL": f"{(mem_expired - mem0) / n:.0f}",
        "MEMORY USAGE per key (bytes)": ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()),
        "Redis keys, finished / after the TTL": f"{keys_done} / {keys_expired}",
        "records / index entries left after the TTL": f"{left} / {index_left}",
        "load average (1 min) before / after": f"{load0[0]:.1f} / {load1[0]:.1f}",
    }
    print(
        f"{n} phantom jobs (16 images, 32 px) via REST, {args.workers} trainer workers, "
        f"{args.concurrency} enqueue clients, {args.poll_rate:g} status polls/s, GDGAN_JOB_TTL_S={args.ttl}; "
        f"{os.cpu_count()}-core VM shared with other sessions"
    )
    if args.markdown:
        print("| measure | value |\n|---|---|")
        for k, v in rows.items():
            print(f"| {k} | {v} |")
    else:
        for k, v in rows.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
