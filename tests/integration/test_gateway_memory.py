"""The gateway validates training presets without importing torch (issue 13: a training request used
to load ~600 MB of torch into a service with a 1 GiB compose limit). Checked on a real gateway process:
its memory maps hold no libtorch after a training, an evaluation and a dataset request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.localstack.servers import free_port
from gdgan.localstack.stack import stop_process
from gdgan.store.local import LocalStore

pytestmark = pytest.mark.integration


def _torch_mapped(pid: int) -> bool:
    return any("libtorch" in line for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def _rss_mb(pid: int) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_training_request_does_not_load_torch_into_the_gateway(redis_url: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    ds = make_phantom(PhantomConfig(n=64, size=32, seed=0)).save(store)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    env.update(
        GDGAN_REDIS_URL=redis_url,
        GDGAN_STORE_URL=(tmp_path / "store").resolve().as_uri(),
        GDGAN_DATA_DIR=str(tmp_path / "data"),
        GDGAN_LOG_LEVEL="WARNING",
    )
    cmd = [sys.executable, "-m", "gdgan.cli.main", "serve", "gateway", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        requests = [
            (
                "/v1/jobs/train",
                {"dataset_id": ds.id, "model": "gdgan", "preset": "tiny", "overrides": {"steps": 5}},
            ),
            ("/v1/jobs/train", {"dataset_id": ds.id, "model": "acgan", "preset": "demo"}),
            ("/v1/jobs/evaluate", {"dataset_id": ds.id, "repeats": 1, "preset": "tiny"}),
            ("/v1/datasets", {"source": "phantom", "n": 100, "size": 32}),
        ]
        for path, body in requests:
            r = httpx.post(url + path, json=body, timeout=60)
            assert r.status_code == 202, (path, r.text)
        bad = httpx.post(
            url + "/v1/jobs/train", json={"dataset_id": ds.id, "overrides": {"size": 48}}, timeout=60
        )
        assert bad.status_code == 422 and "size" in bad.text  # still validated
        assert httpx.get(f"{url}/v1/datasets/{ds.id}", timeout=60).status_code == 200
        assert not _torch_mapped(proc.pid), "the gateway loaded torch"
        assert _rss_mb(proc.pid) < 250, _rss_mb(proc.pid)
    finally:
        stop_process(proc)
