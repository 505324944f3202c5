"""Gateway CPU per job-status poll, this tree against a baseline git revision, in one run.

The poll (``GET /v1/jobs/{id}``) is CPU-bound in the framework, so the figure that matters under
load is the gateway process's CPU seconds per poll, which machine load does not distort (wall time
would). A light harness: one Redis, one job record written directly (no workers), and two gateways
on it (``--baseline REV`` exported with ``git archive``, and this tree), polled sequentially over
one keep-alive connection with a bearer token (so the auth dependencies run) in interleaved rounds.

    PYTHONPATH=shared:. .venv/bin/python benchmarks/bench_poll_cpu.py --baseline main --polls 2000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gdgan.jobs.records import JobStore
from gdgan.localstack.servers import RedisServer, free_port
from gdgan.localstack.stack import stop_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway_load import ROOT, cpu_s  # the load bench's CPU reader

TOKEN = "bench-token-0123456789"


def gateway(src: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """A gateway running the code under ``src`` (its shared/ and services/)."""
    port = free_port()
    full = {**env, "PYTHONPATH": f"{src / 'shared'}:{src}"}
    cmd = [sys.executable, "-m", "gdgan.cli.main", "serve", "gateway", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=full, cwd=src, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    stop_process(proc)
    sys.exit(f"gateway from {src} did not start")


def export(rev: str, tmp: Path) -> Path:
    src = tmp / f"rev-{rev.replace('/', '_')}"
    src.mkdir()
    archive = subprocess.run(["git", "archive", rev, "shared", "services"], cwd=ROOT, capture_output=True)
    if archive.returncode:
        sys.exit(f"--baseline: git archive {rev} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    return src


def rounds(targets: list[tuple[str, str, int]], job: str, polls: int, n_rounds: int) -> list[dict]:
    rows = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for rnd in range(n_rounds):
        for name, url, pid in targets:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
                for _ in range(50):  # warm: connection, first-request imports
                    c.get(f"/v1/jobs/{job}").raise_for_status()
                cpu0, t0 = cpu_s(pid), time.perf_counter()
                for _ in range(polls):
                    c.get(f"/v1/jobs/{job}").raise_for_status()
                wall = time.perf_counter() - t0
                rows.append(
                    {
                        "gateway": name,
                        "round": rnd + 1,
                        "cpu_ms_per_poll": 1000 * (cpu_s(pid) - cpu0) / polls,
                        "wall_ms_per_poll": 1000 * wall / polls,
                    }
                )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="main", help="git revision measured alongside this tree")
    ap.add_argument("--polls", type=int, default=2000, help="polls per gateway per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gdgan-pollcpu-") as tmp:
        home = Path(tmp)
        with RedisServer(dir=home / "redis") as redis:
            env = {
                **os.environ,
                "GDGAN_REDIS_URL": redis.url,
                "GDGAN_DATA_DIR": str(home / "data"),
                "GDGAN_API_TOKENS": json.dumps({TOKEN: ["read"]}),
            }
            env.pop("GDGAN_API_TOKEN", None)
            job = JobStore.from_url(redis.url, 3600, 60).create("train", {"dataset_id": "x"}).id
            procs = []
            try:
                base, base_url = gateway(export(args.baseline, home), env)
                procs.append(base)
                this, this_url = gateway(ROOT, env)
                procs.append(this)
                targets = [
                    (f"baseline {args.baseline}", base_url, base.pid),
                    ("this tree", this_url, this.pid),
                ]
                rows = rounds(targets, job, args.polls, args.rounds)
            finally:
                for p in procs:
                    stop_process(p)
    load = os.getloadavg()[0]
    print(f"{args.polls} sequential polls x {args.rounds} rounds per gateway; load average {load:.1f}")
    for r in rows:
        print(", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    for key in ("cpu_ms_per_poll", "wall_ms_per_poll"):
        a = statistics.median(r[key] for r in rows if r["gateway"] != "this tree")
        b = statistics.median(r[key] for r in rows if r["gateway"] == "this tree")
        print(f"{key}: baseline {a:.3f}, this tree {b:.3f}, ratio this/baseline {b / a:.2f}")


if __name__ == "__main__":
    main()
