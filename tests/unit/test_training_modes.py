"""The modern mode and class-balanced batches: configuration, sampling statistics, wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.labels import FINDINGS
from gdgan.store.local import LocalStore
from gdgan.training.api import train
from gdgan.training.data import TrainData
from gdgan.training.presets import ConfigError, get_config

CARDIO = FINDINGS.index("Cardiomegaly")


def test_paper_preset_keeps_the_papers_game() -> None:
    cfg = get_config("paper")
    assert (cfg.loss, cfg.diffaug, cfg.r1_gamma, cfg.focus_finding) == ("wgan-gp", "", 0.0, "")
    assert cfg.n_critic == 5 and cfg.gp_lambda == 10.0 and cfg.lambda_mse == 1.0


def test_mode_fields_are_checked_by_name() -> None:
    with pytest.raises(ConfigError, match="loss"):
        get_config("tiny", {"loss": "lsgan"})
    with pytest.raises(ConfigError, match="diffaug"):
        get_config("tiny", {"diffaug": "color,flip"})
    with pytest.raises(ConfigError, match="focus_finding"):
        get_config("tiny", {"focus_finding": "Broken heart"})
    with pytest.raises(ConfigError, match="focus_share"):
        get_config("tiny", {"focus_share": 1.5})
    cfg = get_config("tiny", {"loss": "ns", "r1_gamma": "0.5", "diffaug": "translation"})
    assert (cfg.loss, cfg.r1_gamma, cfg.diffaug) == ("ns", 0.5, "translation")


def test_focus_batches_closed_form_share() -> None:
    """share s from the positives, the rest uniform: P(positive) = s + (1 - s)·prevalence."""
    n, prev, s = 2000, 0.05, 0.25
    rng = np.random.default_rng(0)
    detail = np.zeros((n, len(FINDINGS)), np.float32)
    detail[rng.choice(n, int(prev * n), replace=False), CARDIO] = 1
    data = TrainData(
        images=torch.zeros(n, 1, 4, 4, dtype=torch.uint8),
        general=torch.zeros(n, 2),
        detail=torch.from_numpy(detail),
    )
    focused = data.with_focus(CARDIO, s)
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([focused.batch(32, g)[2][:, CARDIO] for _ in range(600)]).numpy()
    expected = s + (1 - s) * prev
    assert draws.mean() == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / len(draws)))
    assert data.with_focus(CARDIO, 0.0) is data  # off: the very same sampler
    empty = data.with_focus(FINDINGS.index("Hernia"), s)
    assert empty is data  # no positives: nothing to focus on


def test_modern_gdgan_trains_and_logs_its_own_terms(tmp_path: torch.Tensor) -> None:
    torch.set_num_threads(1)
    ds = make_phantom(PhantomConfig(n=80, size=32, seed=2, prevalence={"Cardiomegaly": 0.3}))
    mode = {"loss": "hinge", "r1_gamma": 1.0, "diffaug": "color,translation,cutout", "n_critic": 1}
    fast = {"steps": 4, "batch_size": 8, "ngf": 8, "ndf": 8, "checkpoint_every": 4}
    seen = []
    store = LocalStore(tmp_path)
    r = train("gdgan", ds, store=store, preset="tiny", overrides={**fast, **mode}, device="cpu",
              progress=seen.append)  # fmt: skip
    assert r.status == "succeeded"
    assert {"d_hinge", "d_r1", "g_hinge"} <= set(r.final_losses["stage1"]) | set(r.final_losses["stage2"])
    assert "d_wgan" not in r.final_losses["stage1"] and "d_gp" not in r.final_losses["stage1"]
    assert store.manifest(r.model_ids["stage1"]).config["train"]["loss"] == "hinge"


def test_conditional_norm_generator_starts_as_the_papers_and_reaches_every_block() -> None:
    from gdgan.models.gdgan import GanConfig, Generator

    torch.manual_seed(0)
    plain = Generator(GanConfig(size=32, ngf=8), 2)
    torch.manual_seed(0)
    cond = Generator(GanConfig(size=32, ngf=8, cond="norm"), 2)
    assert set(plain.state_dict()) < set(cond.state_dict())  # paper weights keep their keys
    z, y = torch.rand(5, 128), torch.tensor([[0.0, 1.0]] * 5)
    with torch.no_grad():
        assert torch.allclose(plain(z, y), cond(z, y), atol=1e-6)  # zero-initialised shifts
        for c in cond.cond or []:
            c.proj.weight.normal_()
        a, b = cond(z, y), cond(z, 1 - y)
        assert (a - b).abs().mean() > (plain(z, y) - plain(z, 1 - y)).abs().mean()
        # still per sample: an image does not depend on its batch
        assert torch.allclose(cond(z[:2], y[:2]), a[:2], atol=1e-6)
    with pytest.raises(ValueError, match="cond"):
        GanConfig(cond="film")
