"""Rules the deployment files share (compose and Kubernetes), for their tests."""

from __future__ import annotations

from collections.abc import Mapping

# A training step and a checkpoint write of the paper preset, with room to spare: what a worker
# does between SIGTERM and its exit besides waiting for the store (gdgan.jobs.drain).
STEP_AND_CHECKPOINT_S = 60


def worker_grace_needed(env: Mapping[str, str]) -> float:
    """Seconds a worker may need after SIGTERM: a step, a checkpoint write, and the S3 wait budget
    (``GDGAN_S3_RETRY_BUDGET_S`` in ``env``, else its default: the write may meet an S3 restart)."""
    from gdgan.settings import Settings

    default = Settings.model_fields["s3_retry_budget_s"].default
    return float(env.get("GDGAN_S3_RETRY_BUDGET_S", default)) + STEP_AND_CHECKPOINT_S
