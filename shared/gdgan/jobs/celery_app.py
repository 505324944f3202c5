"""The one Celery app: Redis broker and backend from settings, queues ``train`` and ``eval``.

Delivery semantics, and why:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after the
  task finished, so a worker killed mid-task leaves it unacknowledged and Redis hands it out again
  once ``visibility_timeout`` (GDGAN_VISIBILITY_TIMEOUT_S) has passed. The task then resumes from
  the job's last checkpoint (``train(run_id=job_id)``).
- ``worker_prefetch_multiplier=1`` and ``--pool=solo``: one task at a time per worker (= per GPU);
  a long training job never holds a second job hostage in its prefetch buffer.
- The visibility timeout must exceed the longest task, or a running task is delivered twice.
  That is made harmless, not just unlikely: tasks are idempotent by job id (``tasks.run_job``
  checks the record and an ownership lease before doing anything).
- A worker killed outright never acknowledges, and the visibility timeout is hours: the worker
  heartbeats of ``gdgan.jobs.heartbeat`` redeliver its task within GDGAN_WORKER_DEAD_AFTER_S instead,
  and enforce the time limits and the hang timeout.
- Nothing here imports torch: the worker's pool is ``solo`` (no fork), and tasks import the
  library lazily, so CUDA is first touched inside the process that computes.
"""

from __future__ import annotations

from celery import Celery
from gdgan.settings import Settings, get_settings
from kombu import Queue

TRAIN_QUEUE = "train"
EVAL_QUEUE = "eval"

TASK_ROUTES = {
    "gdgan.ingest": {"queue": TRAIN_QUEUE},
    "gdgan.train": {"queue": TRAIN_QUEUE},
    "gdgan.eval_gan": {"queue": TRAIN_QUEUE},
    "gdgan.evaluate": {"queue": EVAL_QUEUE},
    "gdgan.eval_classifier": {"queue": EVAL_QUEUE},
    "gdgan.eval_section": {"queue": EVAL_QUEUE},
    "gdgan.eval_report": {"queue": EVAL_QUEUE},
    "gdgan.generate": {"queue": EVAL_QUEUE},
}


def make_celery(settings: Settings | None = None) -> Celery:
    s = settings or get_settings()
    transport = {
        "visibility_timeout": s.visibility_timeout_s,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
    }
    app = Celery(
        "gdgan",
        broker=s.redis_url,
        backend=s.redis_url,
        include=["gdgan.jobs.tasks", "gdgan.jobs.eval_tasks", "gdgan.jobs.heartbeat"],
    )
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=(Queue(TRAIN_QUEUE), Queue(EVAL_QUEUE)),
        task_default_queue=TRAIN_QUEUE,
        task_routes=TASK_ROUTES,
        task_ignore_result=True,  # results live in the job record, not in Celery's backend
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        result_expires=s.job_ttl_s,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # enforced by Celery under the prefork pool; our solo workers enforce the same values in
        # gdgan.jobs.heartbeat (Celery's limits need a child process to signal or kill)
        task_soft_time_limit=s.task_soft_time_limit_s or None,
        task_time_limit=s.task_time_limit_s or None,
        enable_utc=True,
    )
    return app


app = make_celery()


def send(task: str, *args: object, countdown: float | None = None, queue: str | None = None) -> None:
    """Publish a task without Celery's endless reconnect loop: a broker that is down is an error
    the caller turns into a 503, not a hung HTTP request."""
    app.send_task(
        task,
        args=list(args),
        countdown=countdown,
        queue=queue or TASK_ROUTES[task]["queue"],
        retry=True,
        retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
    )
