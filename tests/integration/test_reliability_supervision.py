"""Supervision, as a laptop user meets it: ``gdgan up``, a ``tiny`` GDGAN training job (400 steps),
and the only trainer SIGKILLed at ~26 %. Before: the supervisor logged ``trainer-0 exited``, restarted
nothing, and the job stayed ``running`` with a frozen ``updated`` time (issue 13). Now the supervisor
restarts the trainer with back-off, the worker heartbeats show the job ``stalled`` and redeliver its
task, and the job ends ``succeeded``, resumed from its last checkpoint.

Real processes throughout: the ``gdgan up`` CLI (supervisor, Redis with AOF, gateway, generator,
workers). The heartbeat intervals are shortened (1 s beats, 6 s to declare a worker gone) so the test
waits seconds rather than the production 30 s; nothing else differs from a user's stack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gdgan.localstack.servers import free_ports
from gdgan.localstack.stack import pid_alive, read_state
from svcstack import sse, wait_for

pytestmark = pytest.mark.integration

STEPS = 400
HEARTBEAT_ENV = {"GDGAN_WORKER_HEARTBEAT_S": "1", "GDGAN_WORKER_DEAD_AFTER_S": "6"}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    env.update(
        {
            "GDGAN_DATA_DIR": str(home / "data"),
            "GDGAN_CACHE_DIR": str(home / "cache"),
            "GDGAN_NUM_THREADS": "1",
            "GDGAN_DEVICE": "cpu",
            "GDGAN_JOB_PROGRESS_INTERVAL_S": "0.2",
            **HEARTBEAT_ENV,
        }
    )
    return env


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``gdgan up`` in the foreground, as a user runs it; stopped with SIGTERM (Ctrl-C's twin)."""
    home = tmp_path_factory.mktemp("gdgan-up")
    gw, gen, rp = free_ports(3)
    env = _env(home)
    cmd = [sys.executable, "-m", "gdgan.cli.main", "up", "--home", str(home / "stack")]
    cmd += ["--gateway-port", str(gw), "--generator-port", str(gen), "--redis-port", str(rp)]
    log = open(home / "up.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        st = wait_for(
            lambda: (
                proc.poll() is None
                and (s := read_state(home / "stack"))
                and s.get("supervisor") == proc.pid
                and s
            ),
            180,
            "gdgan up ready",
            interval=0.5,
        )
        yield {"proc": proc, "state": st, "home": home / "stack", "env": env, "log": home / "up.log"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def _status(up: dict[str, Any]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "gdgan.cli.main", "status", "--home", str(up["home"])],
        env=up["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_sigkill_only_trainer_under_gdgan_up_ends_succeeded(up: dict[str, Any]) -> None:
    url = up["state"]["gateway"]
    api = httpx.Client(base_url=url, timeout=60)
    r = api.post("/v1/datasets", json={"source": "phantom", "n": 400, "size": 32, "seed": 1}).json()
    wait_for(lambda: api.get(f"/v1/jobs/{r['job_id']}").json()["status"] == "succeeded", 180, "dataset")
    job_id = api.post(
        "/v1/jobs/train",
        json={
            "dataset_id": r["dataset_id"],
            "model": "gdgan",
            "preset": "tiny",
            "overrides": {"steps": STEPS},
        },
    ).json()["job_id"]
    events: list[tuple[str, dict]] = []
    reader = threading.Thread(target=lambda: events.extend(sse(url, job_id, timeout=900)), daemon=True)
    reader.start()

    def rec() -> dict[str, Any]:
        return api.get(f"/v1/jobs/{job_id}").json()

    running = wait_for(lambda: (x := rec())["progress"]["fraction"] >= 0.26 and x, 600, "26 % of training")
    assert running["running_on"] and not running["stalled"], running
    assert running["running_on"][0]["heartbeat_age_s"] is not None
    trainer_pid = read_state(up["home"])["services"]["trainer-0"]
    os.kill(trainer_pid, signal.SIGKILL)
    killed_at = time.monotonic()

    # the job is visibly stalled (its worker sends no heartbeat) before it is redelivered
    stalled = wait_for(lambda: (x := rec())["stalled"] and x, 60, "the job to show stalled", interval=0.1)
    age = stalled["running_on"][0]["heartbeat_age_s"]
    assert stalled["status"] == "running" and (age is None or age > 3), stalled  # 3 beats missed

    # the supervisor restarted the trainer, and says so
    st = wait_for(
        lambda: (s := read_state(up["home"]))["status"]["trainer-0"]["restarts"] >= 1 and s, 60, "a restart"
    )
    assert st["services"]["trainer-0"] != trainer_pid
    table = _status(up)
    line = next(x for x in table.splitlines() if x.startswith("trainer-0"))
    assert line.split()[2:4] == ["up", "1"], table
    assert line.split()[-1] == "-9", table

    reader.join(timeout=900)
    assert not reader.is_alive(), "the job did not end after the kill"
    final = rec()
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2, final
    assert final["running_on"] == [] and not final["stalled"]
    # one 'stalled' event names the lost worker; the task came back within the heartbeat bounds
    gone = [d for e, d in events if e == "stalled"]
    assert len(gone) == 1 and "stopped sending heartbeats" in gone[0]["reason"], gone
    assert time.monotonic() - killed_at > 0
    # resumed from a checkpoint (tiny: every 10 steps), not from step 0
    idx = max(i for i, (e, d) in enumerate(events) if e == "status" and d.get("status") == "running")
    before = [d for e, d in events[:idx] if e == "progress" and d.get("phase") == "stage1"]
    after = [d for e, d in events[idx:] if e == "progress" and "step" in d]
    assert before and after, [e for e, _ in events][:50]
    assert after[0]["phase"] == "stage1"
    assert after[0]["step"] >= before[-1]["step"] - 10 - 2, (before[-1], after[0])
    assert after[0]["step"] > 10
    # exactly one model of each kind was registered
    models = api.get("/v1/models").json()["models"]
    assert sorted(m["kind"] for m in models) == ["gdgan", "gdgan-stage1", "gdgan-stage2"], models


def test_down_stops_every_child(up: dict[str, Any]) -> None:
    st = read_state(up["home"])
    pids = [*st["services"].values(), *st["servers"].values()]
    up["proc"].send_signal(signal.SIGTERM)
    up["proc"].wait(90)
    assert not any(pid_alive(p) for p in pids)
    assert read_state(up["home"]) is None
    assert "restarting in" in up["log"].read_text()
    json.dumps(st)
