"""A training job with ``nproc_per_node: 2`` through the real stack (Redis, gateway, Celery
trainer): the worker launches the ranks under torchrun and supervises them; progress reaches
the job record, the model is registered once, cancel stops every rank, bad input is a 422."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gdgan.localstack.stack import Stack
from svcstack import redis_stack, wait_for, wait_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("svc-ddp")
    with redis_stack(home) as s:
        yield s


@pytest.fixture(scope="module")
def dataset_id(stack: Stack, api: httpx.Client) -> str:
    r = api.post("/v1/datasets", json={"source": "phantom", "n": 300, "size": 32, "seed": 3})
    assert r.status_code == 202, r.text
    rec = wait_job(stack.cfg.gateway_url, r.json()["job_id"], timeout=180)
    assert rec["status"] == "succeeded", rec
    return str(r.json()["dataset_id"])


def test_a_two_rank_gdgan_job_trains_both_stages(stack: Stack, api: httpx.Client, dataset_id: str) -> None:
    r = api.post(
        "/v1/jobs/train",
        json={
            "dataset_id": dataset_id,
            "model": "gdgan",
            "preset": "tiny",
            "overrides": {"steps": 8, "stage2_steps": 6, "checkpoint_every": 4},
            "nproc_per_node": 2,
        },
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    rec = wait_job(stack.cfg.gateway_url, job_id, timeout=600)
    assert rec["status"] == "succeeded", rec
    assert rec["params"]["nproc_per_node"] == 2 and rec["result"]["nproc_per_node"] == 2
    assert rec["progress"]["phase"] == "stage2" and rec["progress"]["fraction"] == 1.0
    ids = rec["result"]["model_ids"]
    assert api.get(f"/v1/models/{rec['result']['model_id']}").json()["kind"] == "gdgan"
    for stage in ("stage1", "stage2"):
        m = api.get(f"/v1/models/{ids[stage]}").json()
        assert m["kind"] == f"gdgan-{stage}" and m["meta"]["run_id"] == job_id


def test_cancel_reaches_every_rank(stack: Stack, api: httpx.Client, dataset_id: str) -> None:
    """The job can only end once torchrun exited, i.e. once both ranks stopped at one step."""
    r = api.post(
        "/v1/jobs/train",
        json={
            "dataset_id": dataset_id,
            "model": "acgan",
            "preset": "tiny",
            "overrides": {"steps": 100000},
            "nproc_per_node": 2,
        },
    )
    job_id = r.json()["job_id"]
    wait_for(
        lambda: (api.get(f"/v1/jobs/{job_id}").json().get("progress") or {}).get("step", 0) > 0,
        300,
        "progress",
    )
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    rec = wait_job(stack.cfg.gateway_url, job_id, timeout=120)
    assert rec["status"] == "cancelled" and rec["progress"]["step"] < 100000


def test_nproc_per_node_must_divide_the_global_batch(api: httpx.Client, dataset_id: str) -> None:
    body = {"dataset_id": dataset_id, "model": "acgan", "preset": "tiny", "nproc_per_node": 3}
    r = api.post("/v1/jobs/train", json=body)
    assert r.status_code == 422 and "nproc_per_node" in r.text and "16" in r.text, r.text
    r = api.post("/v1/jobs/train", json=body | {"nproc_per_node": 0})
    assert r.status_code == 422 and "nproc_per_node" in r.text


def test_the_client_cli_asks_for_ranks(stack: Stack, dataset_id: str) -> None:
    """`gdgan jobs train --nproc-per-node N` sends the field: the gateway's refusal names it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    args = ["jobs", "train", "--dataset", dataset_id, "--preset", "tiny", "--nproc-per-node", "3"]
    proc = subprocess.run(
        [sys.executable, "-m", "gdgan.cli.main", *args, "--url", stack.cfg.gateway_url, "--no-wait"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0 and "nproc_per_node" in proc.stderr, proc.stderr
