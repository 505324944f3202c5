"""Training loop, presets, determinism, frozen stage-1 networks, cancellation, artifacts."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from gdgan.data.dataset import ImageDataset
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.labels import FINDINGS
from gdgan.progress import Progress
from gdgan.store.local import LocalStore
from gdgan.training import checkpoint as ck
from gdgan.training.api import train
from gdgan.training.presets import PRESETS, ConfigError, TrainConfig, get_config
from gdgan.training.sampling import GENERATOR_FILE, label_mix
from PIL import Image
from safetensors.torch import load as st_load

FAST = {"steps": 4, "checkpoint_every": 2, "batch_size": 8, "ngf": 8, "ndf": 8}


@pytest.fixture(scope="module")
def ds() -> ImageDataset:
    torch.set_num_threads(1)
    return make_phantom(PhantomConfig(n=120, size=32, seed=3, prevalence={"Cardiomegaly": 0.3}))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")


# --- presets -------------------------------------------------------------------------------------
def test_presets_exist_and_override_field_by_field() -> None:
    assert {"tiny", "demo", "paper"} <= set(PRESETS)
    tiny = get_config("tiny")
    assert tiny.size == 32
    paper = get_config("paper")
    assert (paper.size, paper.batch_size, paper.epochs, paper.lr) == (64, 64, 20.0, 2e-4)
    cfg = get_config("demo", {"batch_size": "16", "betas": "0.0,0.99", "amp": "false", "epochs": "none"})
    assert (cfg.batch_size, cfg.betas, cfg.amp, cfg.epochs) == (16, (0.0, 0.99), False, None)
    assert cfg.ngf == get_config("demo").ngf  # untouched fields keep the preset's values
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_preset_and_field_named() -> None:
    with pytest.raises(ConfigError, match="'huge'"):
        get_config("huge")
    with pytest.raises(ConfigError, match="'batchsize'"):
        get_config("tiny", {"batchsize": 3})
    with pytest.raises(ConfigError, match="batch_size"):
        get_config("tiny", {"batch_size": "many"})
    with pytest.raises(ConfigError, match="size"):
        get_config("tiny", {"size": 48})


def test_epochs_define_steps() -> None:
    cfg = get_config("paper")
    assert cfg.total_steps(78_000) == int(np.ceil(20 * 78_000 / (64 * 5)))


def test_bad_kind_and_missing_stage1(ds: ImageDataset, store: LocalStore) -> None:
    with pytest.raises(ConfigError, match="'stage3'"):
        train("stage3", ds, store=store, preset="tiny", device="cpu")
    with pytest.raises(ConfigError, match="stage1_model"):
        train("stage2", ds, store=store, preset="tiny", device="cpu")


# --- determinism ---------------------------------------------------------------------------------
def _gen_weights(store: LocalStore, model_id: str) -> dict[str, torch.Tensor]:
    return st_load(store.get_bytes(model_id, GENERATOR_FILE))


def test_same_seed_same_weights_different_seed_differs(ds: ImageDataset, tmp_path: Path) -> None:
    stores = [LocalStore(tmp_path / f"s{i}", cache_dir=tmp_path / f"c{i}") for i in range(3)]
    ids = [
        train("stage1", ds, store=s, preset="tiny", overrides={**FAST, "seed": seed}, device="cpu").model_id
        for s, seed in zip(stores, (0, 0, 1))
    ]
    w = [_gen_weights(s, i) for s, i in zip(stores, ids)]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])
    assert any(not torch.equal(w[0][k], w[2][k]) for k in w[0])


# --- stage 2 keeps stage 1 frozen -----------------------------------------------------------------
def test_stage2_leaves_g1_and_d1_unchanged(ds: ImageDataset, store: LocalStore) -> None:
    from gdgan.models.gdgan import GanConfig, build_stage1
    from gdgan.training.api import _Context, _load_stage1
    from gdgan.training.data import TrainData
    from gdgan.training.loop import run_phase
    from gdgan.training.losses import LossWeights
    from gdgan.training.phases import Stage2Phase

    s1 = train("stage1", ds, store=store, preset="tiny", overrides=FAST, device="cpu").model_id
    assert s1 is not None
    ctx = _Context(ds, np.arange(len(ds)), 0, store, "frozen-test", torch.device("cpu"), None, None)
    _, G1, D1 = _load_stage1(ctx, s1)
    before = {f"G1.{k}": v.clone() for k, v in G1.state_dict().items()}
    before |= {f"D1.{k}": v.clone() for k, v in D1.state_dict().items()}
    cfg = get_config("tiny", FAST)
    gan = GanConfig(size=32, nz=cfg.nz, ngf=8, ndf=8)
    from gdgan.models.gdgan import build_stage2

    G2, D2 = build_stage2(gan)
    phase = Stage2Phase(G2, D2, G1, D1, cfg.nz, LossWeights())
    g2_before = [p.clone() for p in G2.parameters()]
    run = run_phase(
        phase,
        TrainData.from_dataset(ds, np.arange(len(ds)), 32, torch.device("cpu")),
        cfg,
        total=3,
        store=store,
        run_id="frozen-test",
        device=torch.device("cpu"),
    )
    assert run.status == "succeeded"
    after = {f"G1.{k}": v for k, v in G1.state_dict().items()} | {
        f"D1.{k}": v for k, v in D1.state_dict().items()
    }
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not p.requires_grad for p in [*G1.parameters(), *D1.parameters()])
    assert any(not torch.equal(a, b) for a, b in zip(g2_before, G2.parameters()))  # G2 did train
    # and the stored stage-1 model is byte-identical afterwards
    ref_g1, _ = build_stage1(GanConfig(size=32, ngf=8, ndf=8))
    ref_g1.load_state_dict(_gen_weights(store, s1))
    assert all(torch.equal(ref_g1.state_dict()[k], before[f"G1.{k}"]) for k in ref_g1.state_dict())


# --- progress and cancellation --------------------------------------------------------------------
def test_progress_reports_step_total_speed(ds: ImageDataset, store: LocalStore) -> None:
    seen: list[Progress] = []
    train(
        "stage1",
        ds,
        store=store,
        preset="tiny",
        overrides={**FAST, "progress_interval_s": 0.0},
        device="cpu",
        progress=seen.append,
    )
    assert [p.step for p in seen] == [1, 2, 3, 4]
    assert all(p.total == 4 and p.phase == "stage1" for p in seen)
    assert seen[-1].images_per_s and seen[-1].images_per_s > 0 and seen[-1].eta_s == 0
    assert {"d_wgan", "d_gp", "d_cls_real", "d_cls_fake", "g_wgan", "g_cls"} <= set(seen[-1].losses)


def test_cancel_leaves_usable_checkpoint(ds: ImageDataset, store: LocalStore) -> None:
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # three steps, then stop

    r = train(
        "gdgan",
        ds,
        store=store,
        preset="tiny",
        overrides=FAST,
        run_id="job-cancel",
        device="cpu",
        should_stop=stop,
    )
    assert r.status == "cancelled" and r.model_id is None and r.steps == {"stage1": 3}
    m = ck.latest_checkpoint(store, "job-cancel", "stage1")
    assert m is not None and m.meta["step"] == 3 and r.checkpoint_id == m.id
    tensors, state = ck.load_checkpoint(store, m.id)
    assert state["step"] == 3 and any(k.startswith("ema.") for k in tensors)
    assert set(m.files) == {ck.TENSORS_FILE, ck.STATE_FILE}  # safetensors + JSON, no pickle
    # resuming finishes all phases
    r2 = train("gdgan", ds, store=store, preset="tiny", overrides=FAST, run_id="job-cancel", device="cpu")
    assert r2.status == "succeeded" and set(r2.model_ids) == {"stage1", "stage2", "gdgan"}
    assert ck.latest_checkpoint(store, "job-cancel", "stage1") is None  # step checkpoints cleaned up


# --- artifacts -----------------------------------------------------------------------------------
def test_model_artifacts_record_provenance(ds: ImageDataset, store: LocalStore) -> None:
    ds.save(store)
    r = train("gdgan", ds.id, store=store, preset="tiny", overrides=FAST, split_seed=2, device="cpu")
    s1, s2, b = (store.manifest(r.model_ids[k]) for k in ("stage1", "stage2", "gdgan"))
    assert (s1.kind, s2.kind, b.kind) == ("gdgan-stage1", "gdgan-stage2", "gdgan")
    assert s1.meta["dataset_id"] == ds.id and s1.meta["split_seed"] == 2
    assert s1.parents == [ds.id] and s2.parents == [ds.id, s1.id] and b.parents == [s1.id, s2.id]
    assert s1.code_version and s1.config["train"]["size"] == 32 and s1.config["model"]["nz"] == 128
    assert set(s2.meta["final_losses"]) >= {"g_mse", "g_cls_general", "d_cls_general"}
    for m in (s1, s2):
        assert {"generator.safetensors", "critic.safetensors", "samples.png", "losses.json"} <= set(m.files)
        losses = store.get_json(m.id, "losses.json")
        assert losses["step"] == [1, 2, 3, 4]
        img = Image.open(io.BytesIO(store.get_bytes(m.id, "samples.png")))
        assert img.format == "PNG" and img.width > 64
    # label_mix = (gender, view) counts of the training positives of each finding
    from gdgan.data.splits import patient_split

    idx = patient_split(ds.labels["patient_id"], 2).train
    assert s1.meta["label_mix"] == label_mix(ds.general()[idx], ds.detail()[idx])
    card = s1.meta["label_mix"]["Cardiomegaly"]
    assert sum(card.values()) == int(ds.labels["findings"][idx, FINDINGS.index("Cardiomegaly")].sum())


def test_acgan_trains_and_stores(ds: ImageDataset, store: LocalStore) -> None:
    r = train("acgan", ds, store=store, preset="tiny", overrides=FAST, device="cpu")
    m = store.manifest(r.model_id)
    assert m.kind == "acgan" and r.model_ids == {"acgan": m.id}
    w = _gen_weights(store, m.id)
    assert w["fc.weight"].shape[1] == 128 + 16


# --- CLI (in-process; the subprocess path is in tests/integration/test_training_cli.py) ---------------
def test_train_cli_json_and_bad_inputs(
    ds: ImageDataset, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from gdgan.cli.main import app
    from gdgan.settings import get_settings
    from typer.testing import CliRunner

    ds.save(store)
    monkeypatch.setenv("GDGAN_STORE_URL", store.root.as_uri())
    get_settings.cache_clear()
    runner = CliRunner()
    fast = ["--set", "steps=2", "--set", "ngf=8", "--set", "ndf=8", "--set", "batch_size=8"]
    res = runner.invoke(
        app, ["train", "stage1", "--dataset", ds.id, "--preset", "tiny", *fast, "--json", "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["status"] == "succeeded" and store.manifest(out["id"]).kind == "gdgan-stage1"
    res = runner.invoke(
        app,
        [
            "train",
            "stage2",
            "--dataset",
            ds.id,
            "--stage1",
            out["id"],
            "--preset",
            "tiny",
            *fast,
            "--json",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    s2 = json.loads(res.stdout.strip().splitlines()[-1])
    assert store.manifest(s2["id"]).parents == [ds.id, out["id"]]
    bad = [
        (["train", "gdgan", "--dataset", ds.id, "--preset", "huge"], "huge"),
        (["train", "gdgan", "--dataset", ds.id, "--preset", "tiny", "--set", "bogus=1"], "bogus"),
        (["train", "gdgan", "--dataset", ds.id, "--preset", "tiny", "--set", "steps"], "key=value"),
        (["train", "acgan", "--dataset", "dataset-20990101-0000000000", "--preset", "tiny"], "dataset-2099"),
        (["train", "stage2", "--dataset", ds.id, "--stage1", ds.id, "--preset", "tiny"], "not a model"),
        (
            ["train", "stage2", "--dataset", ds.id, "--stage1", s2["id"], "--preset", "tiny"],
            "not a GDGAN stage-1",
        ),
    ]
    for args, needle in bad:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output
