"""Checkpoints: safetensors + JSON only, exact resume (2N in one go == N + resume + N)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from gdgan.data.dataset import ImageDataset
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.store.local import LocalStore
from gdgan.training import checkpoint as ck
from gdgan.training.api import train
from gdgan.training.sampling import CRITIC_FILE, GENERATOR_FILE
from safetensors.torch import load as st_load

FAST = {"steps": 6, "checkpoint_every": 2, "batch_size": 8, "ngf": 8, "ndf": 8}


@pytest.fixture(scope="module")
def ds() -> ImageDataset:
    torch.set_num_threads(1)
    return make_phantom(PhantomConfig(n=100, size=32, seed=5, prevalence={"Cardiomegaly": 0.3}))


def _weights(store: LocalStore, mid: str) -> dict[str, torch.Tensor]:
    return {
        **{f"G.{k}": v for k, v in st_load(store.get_bytes(mid, GENERATOR_FILE)).items()},
        **{f"D.{k}": v for k, v in st_load(store.get_bytes(mid, CRITIC_FILE)).items()},
    }


class StopAfter:
    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls > self.n


# the modern mode with everything random in it: DiffAugment draws, lazy R1 (every 3rd critic
# step, so a resume lands between two R1 steps) and class-balanced stage-2 batches
MODERN = {
    "loss": "hinge",
    "r1_gamma": 1.0,
    "r1_every": 3,
    "diffaug": "color,translation,cutout",
    "focus_finding": "Cardiomegaly",
    "focus_share": 0.25,
}


@pytest.mark.parametrize(
    "kind,n_stop,mode",
    [("stage1", 3, {}), ("acgan", 3, {}), ("gdgan", 9, {}), ("gdgan", 9, MODERN), ("acgan", 3, MODERN)],
)
def test_resume_is_exact(ds: ImageDataset, tmp_path: Path, kind: str, n_stop: int, mode: dict) -> None:
    """Stopped at an odd step (not a checkpoint multiple) and resumed: identical final weights.

    For "gdgan", n_stop = 9 stops in stage 2 (6 stage-1 steps, then 3), so a resumed run also
    skips the finished stage 1.
    """
    overrides = {**FAST, **mode}
    one = LocalStore(tmp_path / "one", cache_dir=tmp_path / "c1")
    two = LocalStore(tmp_path / "two", cache_dir=tmp_path / "c2")
    ref = train(kind, ds, store=one, preset="tiny", overrides=overrides, run_id="a", device="cpu")
    part = train(
        kind,
        ds,
        store=two,
        preset="tiny",
        overrides=overrides,
        run_id="b",
        device="cpu",
        should_stop=StopAfter(n_stop),
    )
    assert part.status == "cancelled"
    done = train(kind, ds, store=two, preset="tiny", overrides=overrides, run_id="b", device="cpu")
    assert done.status == "succeeded"
    assert set(done.model_ids) == set(ref.model_ids)
    for name in ref.model_ids:
        if name == "gdgan":
            continue
        wa, wb = _weights(one, ref.model_ids[name]), _weights(two, done.model_ids[name])
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), f"{name} {k} differs after resume"
        la = one.get_json(ref.model_ids[name], "losses.json")
        lb = two.get_json(done.model_ids[name], "losses.json")
        assert la == lb  # the loss curves continue seamlessly too
    if kind == "gdgan":  # stage 1 was finished before the stop: reused, not retrained
        assert done.model_ids["stage1"] == part.model_ids["stage1"]


def test_finished_run_is_not_retrained(ds: ImageDataset, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s", cache_dir=tmp_path / "c")
    a = train("stage1", ds, store=store, preset="tiny", overrides=FAST, run_id="Job-42", device="cpu")
    b = train(
        "stage1",
        ds,
        store=store,
        preset="tiny",
        overrides=FAST,
        run_id="Job-42",
        device="cpu",
        should_stop=lambda: True,
    )  # would cancel immediately if it trained
    assert b.status == "succeeded" and b.model_id == a.model_id


def test_checkpoint_roundtrip_optimizer_and_rng(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s", cache_dir=tmp_path / "c")
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.9))
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(9)
    tensors = ck.module_tensors("net", net)
    t_opt, j_opt = ck.optimizer_tensors("opt", opt)
    tensors |= t_opt
    tensors["rng"] = gen.get_state()
    cid = ck.save_checkpoint(store, "r1", "stage1", 1, tensors, {"step": 1, "opt": j_opt})
    m = store.manifest(cid)
    assert m.kind == "checkpoint" and set(m.files) == {"state.safetensors", "state.json"}
    json.loads(store.get_bytes(cid, "state.json"))  # plain JSON
    loaded, state = ck.load_checkpoint(store, cid)
    net2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=5.0)
    ck.load_module_tensors("net", net2, loaded)
    ck.load_optimizer_tensors("opt", opt2, loaded, state["opt"])
    assert opt2.param_groups[0]["lr"] == 1e-3 and tuple(opt2.param_groups[0]["betas"]) == (0.5, 0.9)
    sa, sb = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for pid in sa:
        assert sa[pid].keys() == sb[pid].keys()
        for k in sa[pid]:
            assert torch.equal(sa[pid][k], sb[pid][k])
    gen2 = torch.Generator()
    gen2.set_state(loaded["rng"])
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=gen2))
    # a newer checkpoint replaces the older one
    cid2 = ck.save_checkpoint(store, "r1", "stage1", 2, tensors, {"step": 2})
    assert not store.exists(cid) and ck.latest_checkpoint(store, "r1", "stage1").id == cid2


def test_resume_on_other_data_refused(ds: ImageDataset, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s", cache_dir=tmp_path / "c")
    train(
        "stage1",
        ds,
        store=store,
        preset="tiny",
        overrides=FAST,
        run_id="x",
        device="cpu",
        should_stop=StopAfter(2),
    )
    with pytest.raises(ValueError, match="other data"):
        train(
            "stage1",
            ds,
            store=store,
            preset="tiny",
            overrides=FAST,
            run_id="x",
            device="cpu",
            train_idx=list(range(10)),
        )


def test_run_ids_become_safe_artifact_ids() -> None:
    assert ck.checkpoint_id("Job 7/Ä", "stage1", 12) == "ckpt-job-7-stage1-000000012"
