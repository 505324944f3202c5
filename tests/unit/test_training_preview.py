"""Live previews: a training run shows its sample grid every K steps without changing the run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gdgan.data.dataset import ImageDataset
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.jobs.records import JobStore
from gdgan.store.local import LocalStore
from gdgan.training.api import train
from gdgan.training.artifacts import SAMPLES_FILE
from gdgan.training.sampling import GENERATOR_FILE
from safetensors.torch import load as st_load

FAST = {"steps": 6, "checkpoint_every": 3, "batch_size": 8, "ngf": 8, "ndf": 8}


@pytest.fixture(scope="module")
def ds() -> ImageDataset:
    torch.set_num_threads(1)
    return make_phantom(PhantomConfig(n=120, size=32, seed=3, prevalence={"Cardiomegaly": 0.3}))


def test_previews_every_k_steps_end_at_the_stored_grid_and_leave_training_unchanged(
    ds: ImageDataset, tmp_path: Path
) -> None:
    watched = LocalStore(tmp_path / "a", cache_dir=tmp_path / "ca")
    plain = LocalStore(tmp_path / "b", cache_dir=tmp_path / "cb")
    seen: list[tuple[str, int, bytes]] = []
    r = train(
        "gdgan",
        ds,
        store=watched,
        preset="tiny",
        overrides=FAST,
        device="cpu",
        preview=lambda phase, step, png: seen.append((phase, step, png)),
        preview_every=4,
    )
    r0 = train("gdgan", ds, store=plain, preset="tiny", overrides=FAST, device="cpu")
    # every 4th step and each phase's last step (6), in order
    assert [(p, s) for p, s, _ in seen] == [("stage1", 4), ("stage1", 6), ("stage2", 4), ("stage2", 6)]
    assert all(png.startswith(b"\x89PNG") for *_, png in seen)
    assert seen[0][2] != seen[1][2]  # the grid changes as the model learns
    # the last preview of a phase is the very grid its model artifact keeps
    for phase, idx in (("stage1", 1), ("stage2", 3)):
        assert seen[idx][2] == watched.get_bytes(r.model_ids[phase], SAMPLES_FILE), phase
    # watching does not change the run: same weights as an unwatched run with the same seed
    for phase in ("stage1", "stage2"):
        a = st_load(watched.get_bytes(r.model_ids[phase], GENERATOR_FILE))
        b = st_load(plain.get_bytes(r0.model_ids[phase], GENERATOR_FILE))
        assert all(torch.equal(a[k], b[k]) for k in a), phase


def test_job_store_keeps_the_latest_preview_and_announces_it(redis_url: str) -> None:
    jobs = JobStore.from_url(redis_url, ttl_s=60)
    rec = jobs.create("train", {})
    assert jobs.get_preview(rec.id) is None
    jobs.set_preview(rec.id, "stage1", 4, b"\x89PNG-one")
    jobs.set_preview(rec.id, "stage1", 8, b"\x89PNG-two")
    assert jobs.get_preview(rec.id) == ({"phase": "stage1", "step": 8}, b"\x89PNG-two")
    raw = jobs.r.xrange(f"gdgan:job:{rec.id}:events")
    previews = [f["data"] for _, f in raw if f["event"] == "preview"]
    assert previews == ['{"phase": "stage1", "step": 4}', '{"phase": "stage1", "step": 8}']
