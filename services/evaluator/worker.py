"""The evaluator's wiring: it consumes queue 'eval' as node 'evaluator-<pid>@<host>'."""

from __future__ import annotations

from gdgan.jobs.celery_app import EVAL_QUEUE

from services.common.worker import run_worker


def main(loglevel: str = "INFO") -> None:
    run_worker(EVAL_QUEUE, "evaluator", loglevel)
