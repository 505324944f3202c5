"""services/trainer and services/evaluator hold the workers' wiring: ``python -m services.trainer``
starts a real Celery worker consuming queue 'train' (and the evaluator 'eval') against real Redis,
named '<role>-<pid>@<host>' for the health check. (The folders were empty before.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from gdgan.localstack.stack import stop_process


@pytest.mark.parametrize(("role", "queue"), [("trainer", "train"), ("evaluator", "eval")])
def test_worker_service_consumes_its_queue(role: str, queue: str, redis_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    env.update(GDGAN_REDIS_URL=redis_url, GDGAN_DATA_DIR=str(tmp_path), GDGAN_CACHE_DIR=str(tmp_path / "c"))
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", f"services.{role}"], env=env, stdout=log, stderr=log)
    try:
        control = Celery(broker=redis_url).control
        queues: dict[str, list[dict]] = {}
        for _ in range(60):
            queues = control.inspect(timeout=1.0).active_queues() or {}
            if queues or proc.poll() is not None:
                break
        assert queues, (tmp_path / "worker.log").read_text()[-2000:]
        ((node, qs),) = queues.items()
        assert node.startswith(f"{role}-{proc.pid}@")
        assert [q["name"] for q in qs] == [queue]
    finally:
        stop_process(proc)
        log.close()
