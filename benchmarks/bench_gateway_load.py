"""Gateway under load while a training job runs: an open-loop 200 job-status polls per second plus 50
open SSE streams on the same job. Reports the polls' p50/p99/max latency, the rate reached, errors,
the SSE events delivered, and the gateway's RSS. Loopback only; the whole stack is real
(``tests/svcstack.py``'s ``start_stack``: Redis, gateway, generator, a trainer, an evaluator).

``--baseline REV`` also serves the same Redis and job from a second gateway running the code of git
revision REV (exported with ``git archive``), and the two are loaded in interleaved rounds (A B A B
...), so machine load drifts hit both alike: a before/after in one run.

    PYTHONPATH=shared:. .venv/bin/python benchmarks/bench_gateway_load.py [--seconds 60] [--markdown]
    nice -n 5 ... bench_gateway_load.py --baseline 3030b6f --rounds 2 --seconds 20 --markdown
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gdgan.localstack.servers import RedisServer, free_port
from gdgan.localstack.stack import stop_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test-only stack helper
from svcstack import start_stack, wait_for, wait_job

ROOT = Path(__file__).resolve().parents[1]


def baseline_gateway(rev: str, env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A gateway running git revision ``rev``'s code (shared/ and services/) on the stack's settings."""
    src = tmp / f"baseline-{rev}"
    src.mkdir()
    archive = subprocess.run(["git", "archive", rev, "shared", "services"], cwd=ROOT, capture_output=True)
    if archive.returncode:
        sys.exit(f"--baseline: git archive {rev} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    port = free_port()
    full = {**env, "PYTHONPATH": f"{src / 'shared'}:{src}"}
    cmd = [sys.executable, "-m", "gdgan.cli.main", "serve", "gateway", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=full, cwd=src, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 120, f"baseline gateway ({rev}) ready")
    return proc, url


def cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process so far (CPU per poll is what the load cannot distort)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def _cell(key: str, v: object) -> str:
    if not isinstance(v, float):
        return str(v)
    return f"{v:.2f}" if key == "gw_cpu_ms_per_poll" else f"{v:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="per round")
    ap.add_argument("--rate", type=float, default=200.0, help="status polls per second")
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--baseline", default="", help="git revision whose gateway is measured alongside")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds per gateway")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows: list[dict[str, object]] = []
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gdgan-gwload-") as tmp:
        home = Path(tmp)
        with RedisServer(dir=home / "redis") as redis:
            stack = start_stack(home, redis_url=redis.url, env={"GDGAN_JOB_PROGRESS_INTERVAL_S": "0.5"})
            base_proc = None
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
                targets = [("this tree", url, gw.proc.pid)]
                if args.baseline:
                    base_proc, base_url = baseline_gateway(args.baseline, stack.env, home)
                    targets.insert(0, (f"baseline {args.baseline}", base_url, base_proc.pid))
                for rnd in range(args.rounds):
                    for name, u, pid in targets:
                        rss0, cpu0 = rss_mb(pid), cpu_s(pid)
                        res = asyncio.run(load(u, job, args.rate, args.streams, args.seconds))
                        cpu_ms = 1000 * (cpu_s(pid) - cpu0) / max(1, res["polls"])
                        loads.append(os.getloadavg()[0])
                        row = {"gateway": name, "round": rnd + 1, **res, "gw_cpu_ms_per_poll": cpu_ms}
                        rows.append({**row, "rss_mb_before": rss0, "rss_mb_after": rss_mb(pid)})
                api.post(f"/v1/jobs/{job}/cancel")
            finally:
                if base_proc is not None:
                    stop_process(base_proc)
                stack.stop()
    print(
        f"{args.rate:g} polls/s target + {args.streams} SSE streams, {args.seconds:g} s rounds while a "
        f"training job runs; {os.cpu_count()}-core VM, load average after each round "
        + ", ".join(f"{x:.1f}" for x in loads)
    )
    if args.markdown:
        print("| " + " | ".join(map(str, rows[0])) + " |")
        print("|" + "---|" * len(rows[0]))
        for row in rows:
            print("| " + " | ".join(_cell(k, v) for k, v in row.items()) + " |")
    else:
        for row in rows:
            print(", ".join(f"{k}={_cell(k, v)}" for k, v in row.items()))
    if args.baseline:
        for key in ("rate", "p50_ms", "p99_ms", "gw_cpu_ms_per_poll"):
            a = statistics.mean(float(r[key]) for r in rows if r["gateway"] != "this tree")  # type: ignore[arg-type]
            b = statistics.mean(float(r[key]) for r in rows if r["gateway"] == "this tree")  # type: ignore[arg-type]
            print(f"{key}: baseline {a:.2f}, this tree {b:.2f}, ratio this/baseline {b / a:.2f}")


if __name__ == "__main__":
    main()
