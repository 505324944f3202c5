"""The trainer's wiring: it consumes queue 'train' as node 'trainer-<pid>@<host>'."""

from __future__ import annotations

from gdgan.jobs.celery_app import TRAIN_QUEUE

from services.common.worker import run_worker


def main(loglevel: str = "INFO") -> None:
    run_worker(TRAIN_QUEUE, "trainer", loglevel)
