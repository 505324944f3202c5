"""Warm shutdown of a worker: the running task checkpoints and hands its job back.

Kubernetes scales a worker Deployment down (KEDA, a rollout, a node drain) by sending the pod
SIGTERM, then SIGKILL after ``terminationGracePeriodSeconds``. Celery's warm shutdown on SIGTERM
stops taking tasks but waits for the running one, which for a training run means hours: the pod is
killed at the end of the grace period and the job resumes elsewhere from its last periodic
checkpoint, up to a checkpoint interval later and only once the heartbeat reaper notices.

Here SIGTERM (Celery's ``worker_shutting_down`` signal) also raises the job's stop flag, as a
cancel would: training writes a checkpoint at the current step and returns, and ``run_job`` puts
the job (or the fan-out part) back to ``queued`` with a ``requeued`` event and sends the task again.
The worker then exits; another worker, or this one restarted, resumes at that step. Nothing is
lost but the step in flight, and the grace period only needs to cover one step and one checkpoint
write (see docs/notes/reliability.md).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals

log = logging.getLogger("gdgan.jobs")

_draining = threading.Event()
_reason = ""


def requested() -> bool:
    """True once this worker process was asked to shut down."""
    return _draining.is_set()


def reason() -> str:
    return _reason or "the worker is shutting down"


def request(why: str) -> None:
    """Ask the running task to stop at its next step and hand its job back."""
    global _reason
    _reason = why
    _draining.set()


@signals.worker_shutting_down.connect
def _on_shutting_down(sender: Any = None, sig: Any = "SIGTERM", how: str = "Warm", **_: Any) -> None:
    # runs inside Celery's signal handler in the main thread: set a flag, nothing that may block
    request(f"worker {sender or '?'} is shutting down ({sig}, {str(how).lower()})")
