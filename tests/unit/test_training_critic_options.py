"""Critic options of the modern mode (minibatch stddev, projection) and the focus-finding weight,
checked against numpy references and planted signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.labels import FINDINGS
from gdgan.models.gdgan import Critic, GanConfig, minibatch_stddev
from gdgan.store.local import LocalStore
from gdgan.training import losses as L
from gdgan.training.api import _weights, train
from gdgan.training.presets import ConfigError, get_config


def _np_mbstd(h: np.ndarray, g: int) -> np.ndarray:
    """The extra map, written independently: per group, numpy's population std of every feature
    over the group's samples, averaged over (C, H, W), broadcast to the group's samples."""
    B = h.shape[0]
    out = np.empty(B)
    for start in range(0, B, g):
        out[start : start + g] = h[start : start + g].std(axis=0).mean()
    return out


@pytest.mark.parametrize(("B", "group", "g"), [(8, 4, 4), (6, 4, 3), (5, 4, 1), (3, 8, 3)])
def test_minibatch_stddev_equals_numpy_std_over_the_group(B: int, group: int, g: int) -> None:
    h = torch.from_numpy(np.random.default_rng(B).normal(size=(B, 5, 4, 4)).astype(np.float32))
    out = minibatch_stddev(h, group)
    assert out.shape == (B, 6, 4, 4)
    torch.testing.assert_close(out[:, :5], h)  # the features pass unchanged
    expected = _np_mbstd(h.numpy().astype(np.float64), g)
    got = out[:, 5].numpy()
    assert np.allclose(got, expected[:, None, None], atol=2e-4)  # constant map = the group's figure


def test_minibatch_stddev_sees_a_collapsed_batch() -> None:
    """Planted signal: a batch of one image repeated scores 0 (up to the 1e-8 floor); varied > 0."""
    same = torch.randn(1, 4, 4, 4).expand(8, -1, -1, -1).contiguous()
    assert minibatch_stddev(same, 4)[:, 4].max().item() < 1e-3
    assert minibatch_stddev(torch.randn(8, 4, 4, 4), 4)[:, 4].min().item() > 0.5


def test_mbstd_critic_couples_only_within_a_group() -> None:
    torch.manual_seed(0)
    d = Critic(GanConfig(size=32, ndf=8, mbstd=2), 2).eval()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    before = d(x)[0]
    x2 = x.clone()
    x2[3] = -x2[3]
    after = d(x2)[0]
    torch.testing.assert_close(before[:2], after[:2])  # the other group does not see it
    assert (before[2] - after[2]).abs().item() > 0  # its group partner does


def test_projection_term_is_the_explicit_inner_product() -> None:
    torch.manual_seed(1)
    cfg = GanConfig(size=32, ndf=8, projection=True)
    d = Critic(cfg, 3).eval()
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    y = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        score_y, logits_y = d(x, y)
        score_0, logits_0 = d(x, torch.zeros_like(y))
        h = d.trunk(x).flatten(1).numpy().astype(np.float64)  # (B, feat)
        W = d.embed.weight.numpy().astype(np.float64)  # (feat, n_classes)
    expected = np.einsum("bf,fc,bc->b", h, W, y.numpy())  # Σ_c y_c <W[:, c], h>
    assert np.allclose((score_y - score_0).numpy(), expected, atol=1e-4)
    torch.testing.assert_close(logits_y, logits_0)  # the auxiliary heads never see y
    with pytest.raises(ValueError, match="labels"):
        d(x)


def test_paper_critic_keeps_its_weight_keys() -> None:
    plain = set(Critic(GanConfig(size=32, ndf=8), 2).state_dict())
    assert "embed.weight" in set(Critic(GanConfig(size=32, ndf=8, projection=True), 2).state_dict()) - plain
    assert set(Critic(GanConfig(size=32, ndf=8, mbstd=4), 2).state_dict()) == plain
    paper = get_config("paper")
    assert (paper.mbstd, paper.projection, paper.focus_weight) == (0, False, 1.0)


def test_aux_bce_column_weights_match_numpy() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(7, 4))
    y = (rng.random((7, 4)) < 0.4).astype(np.float64)
    cw = np.array([1.0, 5.0, 1.0, 0.5])
    per = np.logaddexp(0, logits) - y * logits  # BCE-with-logits, elementwise
    expected = 2.0 * (per * cw).mean()
    got = L.aux_bce(torch.tensor(logits, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), 2.0,
                    tuple(cw))  # fmt: skip
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_focus_weight_scales_only_the_focus_column() -> None:
    cfg = get_config("demo", {"focus_weight": 4.0})
    cols = _weights(cfg, tuple(FINDINGS)).detail_cols
    assert cols is not None and cols[FINDINGS.index("Cardiomegaly")] == 4.0
    assert sum(cols) == pytest.approx(4.0 + len(FINDINGS) - 1)
    assert _weights(cfg).detail_cols is None  # stage 1 / ACGAN: no detail columns weighted
    assert _weights(get_config("demo", {"focus_weight": 1.0}), tuple(FINDINGS)).detail_cols is None
    with pytest.raises(ConfigError, match="focus_weight"):
        get_config("demo", {"focus_weight": 0})
    with pytest.raises(ConfigError, match="mbstd"):
        get_config("demo", {"mbstd": -1})


def test_gdgan_trains_with_every_critic_option(tmp_path: torch.Tensor) -> None:
    """Stage 2 rebuilds D1 from the stored stage-1 model (mbstd + projection) and trains."""
    torch.set_num_threads(1)
    ds = make_phantom(PhantomConfig(n=80, size=32, seed=2, prevalence={"Cardiomegaly": 0.3}))
    fast = {"steps": 3, "stage2_steps": 3, "batch_size": 8, "ngf": 8, "ndf": 8, "checkpoint_every": 3}
    over = {**fast, "mbstd": 4, "projection": True, "focus_weight": 3.0, "quality_every": 0}
    store = LocalStore(tmp_path)
    r = train("gdgan", ds, store=store, preset="demo", overrides=over, device="cpu")
    assert r.status == "succeeded"
    model = store.manifest(r.model_ids["stage1"]).config["model"]
    assert model["mbstd"] == 4 and model["projection"] is True
    assert all(np.isfinite(v) for v in r.final_losses["stage2"].values())
