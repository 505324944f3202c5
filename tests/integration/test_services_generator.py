"""The generation service as a real uvicorn process over a real store: determinism, batching of
concurrent requests into shared forward passes (seen in /metrics), the bounded queue (503 +
Retry-After), LRU loading and a newly registered 'latest' model served without a restart."""

from __future__ import annotations

import asyncio
import io
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gdgan.localstack.stack import stop_process
from gdgan.store.local import LocalStore
from gdgan.training.sampling import BATCH_TOLERANCE_GREY_LEVELS
from PIL import Image
from svcstack import serve_generator, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A store with a tiny GDGAN and ACGAN, trained in this process (seconds on one thread)."""
    import torch
    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.training.api import train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gen-store")
    store = LocalStore(root / "store", cache_dir=root / "cache")
    ds = make_phantom(PhantomConfig(n=300, size=32, seed=2))
    ds.save(store)
    ids = {}
    for kind in ("gdgan", "acgan"):
        res = train(
            kind, ds, store=store, preset="tiny", overrides={"steps": 4, "checkpoint_every": 4}, device="cpu"
        )
        ids[kind] = res.model_id
    return root, ids


def _serve(root: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    return serve_generator(root, {"GDGAN_NUM_THREADS": "1", **env_extra}, log=True)


@pytest.fixture(scope="module")
def generator(trained: tuple[Path, dict[str, str]]) -> Iterator[str]:
    root, _ = trained
    proc, url = _serve(
        root,
        {
            "GDGAN_GENERATE_MAX_WAIT_MS": "250",
            "GDGAN_GENERATE_MAX_BATCH": "64",
            "GDGAN_GENERATE_ALIAS_TTL_S": "0.5",
        },
    )
    yield url
    stop_process(proc)


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def _concurrent(url: str, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        return await asyncio.gather(*[c.post("/v1/generate", json=b) for b in bodies])


def _zip_images(content: bytes) -> tuple[dict[str, np.ndarray], bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        pngs = {
            n: np.asarray(Image.open(io.BytesIO(zf.read(n)))) for n in zf.namelist() if n.endswith(".png")
        }
        return pngs, zf.read("labels.csv")


def test_same_seed_same_bytes_alone_within_one_level_batched(
    generator: str, trained: tuple[Path, dict[str, str]]
) -> None:
    """The guarantee of gdgan.training.sampling: same request and seed alone -> same bytes;
    batched with other requests -> the same labels and every pixel within 1 grey level."""
    body = {"model": "gdgan", "n": 3, "finding": "Cardiomegaly", "seed": 42, "format": "zip"}
    alone = httpx.post(generator + "/v1/generate", json=body, timeout=60)
    assert alone.status_code == 200, alone.text
    assert alone.headers["x-gdgan-seed"] == "42" and alone.headers["x-gdgan-model-id"] == trained[1]["gdgan"]
    assert httpx.post(generator + "/v1/generate", json=body, timeout=60).content == alone.content
    others = [{**body, "seed": 100 + i} for i in range(5)]
    batched = asyncio.run(_concurrent(generator, [body, *others]))
    assert all(r.status_code == 200 for r in batched)
    want, want_labels = _zip_images(alone.content)
    got, got_labels = _zip_images(batched[0].content)
    assert got_labels == want_labels and sorted(got) == sorted(want)
    for name, img in want.items():
        diff = np.abs(img.astype(int) - got[name].astype(int))
        assert diff.max() <= BATCH_TOLERANCE_GREY_LEVELS, name
    assert len({r.content for r in batched}) == 6
    with zipfile.ZipFile(io.BytesIO(alone.content)) as zf:
        assert zf.read("labels.csv").decode().count("Cardiomegaly") == 3
    unseeded = httpx.post(generator + "/v1/generate", json={**body, "seed": None}, timeout=60)
    again = httpx.post(
        generator + "/v1/generate", json={**body, "seed": int(unseeded.headers["x-gdgan-seed"])}, timeout=60
    )
    assert unseeded.content == again.content  # the returned seed reproduces the images


def test_concurrent_requests_share_forward_passes(generator: str) -> None:
    passes0 = _metric(generator, "gdgan_generator_batch_requests_count")
    reqs0 = _metric(generator, "gdgan_generator_batch_requests_sum")
    bodies = [{"model": "gdgan", "n": 2, "seed": i, "format": "json"} for i in range(12)]
    rs = asyncio.run(_concurrent(generator, bodies))
    assert all(r.status_code == 200 for r in rs)
    passes = _metric(generator, "gdgan_generator_batch_requests_count") - passes0
    reqs = _metric(generator, "gdgan_generator_batch_requests_sum") - reqs0
    assert reqs == 12
    assert passes < 12, f"12 concurrent requests took {passes} forward passes: no batching"
    assert _metric(generator, "gdgan_generator_images_total") >= 24


def test_models_listing_and_new_latest_without_restart(
    generator: str, trained: tuple[Path, dict[str, str]]
) -> None:
    from gdgan.training.artifacts import write_bundle

    root, ids = trained
    listing = httpx.get(generator + "/v1/models", timeout=10).json()
    assert ids["gdgan"] in listing["loaded"]
    assert {ids["gdgan"], ids["acgan"]} <= {m["id"] for m in listing["available"]}
    store = LocalStore(root / "store", cache_dir=root / "cache")
    b = store.manifest(ids["gdgan"])
    s1, s2 = store.manifest(b.meta["stage1"]), store.manifest(b.meta["stage2"])
    new = write_bundle(store, s1, s2, store.get_bytes(s2.id, "samples.png"))
    assert new.id != ids["gdgan"]

    def served() -> bool:
        r = httpx.post(generator + "/v1/generate", json={"model": "gdgan", "n": 1, "seed": 0}, timeout=30)
        return r.headers.get("x-gdgan-model-id") == new.id

    wait_for(served, 15, "the new latest GDGAN to be served")
    r = httpx.post(
        generator + "/v1/generate", json={"model": "acgan", "n": 2, "stage": 1, "seed": 0}, timeout=30
    )
    assert r.status_code == 422 and "stage" in r.text


def test_full_queue_answers_503_with_retry_after(trained: tuple[Path, dict[str, str]]) -> None:
    root, _ = trained
    proc, url = _serve(root, {"GDGAN_GENERATE_QUEUE_SIZE": "2", "GDGAN_GENERATE_MAX_WAIT_MS": "300"})
    try:
        rs = asyncio.run(_concurrent(url, [{"model": "acgan", "n": 8, "seed": i} for i in range(12)]))
        codes = [r.status_code for r in rs]
        assert 200 in codes and 503 in codes, codes
        busy = next(r for r in rs if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "queue full" in busy.json()["detail"]
        assert _metric(url, "gdgan_generator_rejected_total") == codes.count(503)
        assert (
            httpx.post(url + "/v1/generate", json={"model": "acgan", "n": 1}, timeout=30).status_code == 200
        )
    finally:
        stop_process(proc)
