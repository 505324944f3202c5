"""``DELETE /v1/datasets/{id}`` and ``gdgan data delete`` on a real gateway process, a real S3 server
(SeaweedFS) and real Redis: the dry run lists the lineage and removes nothing, a running job that
uses the dataset is named in a 409 (and in the CLI's one-line error), and once it has ended the
dataset and everything derived from it are gone while an unrelated dataset stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.jobs.records import JobStore
from gdgan.localstack.servers import free_port
from gdgan.localstack.stack import stop_process
from gdgan.store import open_store
from gdgan.training.api import train

pytestmark = pytest.mark.integration
FAST = {"steps": "2", "checkpoint_every": "1", "batch_size": "8", "ngf": "8", "ndf": "8"}


def _gateway(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "gdgan.cli.main", "serve", "gateway", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError("gateway did not become ready")


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gdgan.cli.main", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_delete_dataset_api_and_cli(s3_env: dict[str, str], redis_url: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    store = open_store()
    keep = make_phantom(PhantomConfig(n=40, size=32, seed=5)).save(store)
    ds = make_phantom(PhantomConfig(n=60, size=32, seed=1, prevalence={"Cardiomegaly": 0.3})).save(store)
    run = train(
        "acgan", ds.id, store=store, preset="tiny", overrides=FAST, run_id="job-lineage", device="cpu"
    )
    lineage = {m.id for m in store.list()} - {keep.id}
    assert {ds.id, str(run.model_id)} <= lineage

    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    env.update(
        s3_env,
        GDGAN_REDIS_URL=redis_url,
        GDGAN_DATA_DIR=str(tmp_path / "data"),
        GDGAN_CACHE_DIR=str(tmp_path / "cache"),
        GDGAN_LOG_LEVEL="WARNING",
        GDGAN_API_TOKENS=json.dumps({"tok-admin": ["admin"], "tok-train": ["read", "train", "generate"]}),
    )
    jobs = JobStore.from_url(redis_url, ttl_s=3600)
    job = jobs.create("generate", {"model": str(run.model_id), "n": 10})
    jobs.set_status(job.id, "running")
    proc, url = _gateway(env)
    admin = {"Authorization": "Bearer tok-admin"}
    try:
        # deleting needs the admin scope: it removes every user's models and reports of the dataset
        r = httpx.delete(
            f"{url}/v1/datasets/{ds.id}", headers={"Authorization": "Bearer tok-train"}, timeout=60
        )
        assert r.status_code == 403 and "admin" in r.text, r.text
        dry = httpx.delete(
            f"{url}/v1/datasets/{ds.id}", params={"dry_run": "true"}, headers=admin, timeout=60
        )
        assert dry.status_code == 409 and job.id in dry.json()["detail"], dry.text
        cli = _cli(["data", "delete", ds.id, "--dry-run"], env)
        assert cli.returncode == 2 and job.id in cli.stderr and len(cli.stderr.strip().splitlines()) == 1

        jobs.set_status(job.id, "succeeded")
        dry = httpx.delete(
            f"{url}/v1/datasets/{ds.id}", params={"dry_run": "true"}, headers=admin, timeout=60
        )
        assert dry.status_code == 200, dry.text
        body = dry.json()
        assert body["dry_run"] and {a["id"] for a in body["artifacts"]} == lineage
        assert body["artifacts"][-1]["id"] == ds.id and body["counts"]["dataset"] == 1
        assert {m.id for m in store.list()} == lineage | {keep.id}  # nothing removed
        cli = _cli(["data", "delete", ds.id, "--dry-run", "--json"], env)
        assert cli.returncode == 0, cli.stderr
        assert '"dry_run": true' in cli.stdout and str(run.model_id) in cli.stdout

        # not a dataset: 404 naming what it is, nothing removed
        wrong = httpx.delete(f"{url}/v1/datasets/{run.model_id}", headers=admin, timeout=60)
        assert wrong.status_code == 404 and "acgan" in wrong.text

        gone = httpx.delete(f"{url}/v1/datasets/{ds.id}", headers=admin, timeout=60)
        assert gone.status_code == 200 and not gone.json()["dry_run"], gone.text
        assert {m.id for m in store.list()} == {keep.id}
        assert httpx.get(f"{url}/v1/datasets/{ds.id}", headers=admin, timeout=60).status_code == 404
        assert httpx.delete(f"{url}/v1/datasets/{ds.id}", headers=admin, timeout=60).status_code == 404
        assert httpx.get(f"{url}/v1/datasets/{keep.id}", headers=admin, timeout=60).status_code == 200
        cli = _cli(
            ["data", "delete", keep.id, "--dry-run"], {**env, "GDGAN_REDIS_URL": "redis://127.0.0.1:1/0"}
        )
        assert cli.returncode == 2 and "--no-job-check" in cli.stderr  # cannot ask Redis: refuses
    finally:
        stop_process(proc)
