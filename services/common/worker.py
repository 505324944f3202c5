"""Starting a Celery worker process: shared by the trainer and the evaluator services.

The task implementations live in the core library (``gdgan.jobs.tasks``: thin adapters from a
job record to ``gdgan.training`` / ``gdgan.evaluation``), so the CLI, tests and workers run the
same code. A service here decides only which queue a process consumes and how it runs:

- ``--pool=solo --concurrency=1``: one task at a time, in this very process (no fork after CUDA
  was touched; one worker per GPU);
- a unique node name ``<role>-<pid>@<host>``: several workers may share a host, and the health
  check (docker/healthcheck.py) finds them by host;
- no gossip/mingle: workers do not talk to each other; coordination is the job records' leases
  and the worker heartbeats (``gdgan.jobs.heartbeat``, connected to the worker's signals here).
"""

from __future__ import annotations

import os


def celery_argv(queue: str, role: str, loglevel: str = "INFO") -> list[str]:
    return [
        "worker",
        "-Q",
        queue,
        "--pool=solo",
        "--concurrency=1",
        "-n",
        f"{role}-{os.getpid()}@%h",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]


def run_worker(queue: str, role: str, loglevel: str = "INFO") -> None:
    """Block in a Celery worker consuming ``queue`` (no torch / CUDA import here)."""
    import gdgan.jobs.heartbeat  # noqa: F401  (connects the heartbeat/watchdog to the worker's signals)
    from gdgan.jobs.celery_app import app as celery

    celery.worker_main(celery_argv(queue, role, loglevel))
