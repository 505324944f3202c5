"""Network shapes, ranges and the WGAN-GP constraints (no sigmoid, no batch-norm in critics)."""

from __future__ import annotations

import pytest
import torch
from gdgan.models import (
    N_ACGAN_LABELS,
    Critic,
    GanConfig,
    Generator,
    build_acgan,
    build_stage1,
    build_stage2,
    from_uint8,
    to_uint8,
)
from torch import nn


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_shapes_all_sizes(size: int) -> None:
    torch.manual_seed(0)
    cfg = GanConfig(size=size, ngf=8, ndf=8)
    g1, d1 = build_stage1(cfg)
    g2, d2 = build_stage2(cfg)
    z = torch.rand(2, cfg.nz)
    x1 = g1(z, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert x1.shape == (2, 1, size, size)
    assert x1.abs().max() <= 1.0
    score, logits = d1(x1)
    assert score.shape == (2,) and logits.shape == (2, 2)
    x2 = g2(x1, torch.zeros(2, 14))
    assert x2.shape == (2, 1, size, size) and x2.abs().max() <= 1.0
    s2, l2 = d2(x2)
    assert s2.shape == (2,) and l2.shape == (2, 14)


def test_unsupported_size_rejected() -> None:
    with pytest.raises(ValueError, match="size"):
        GanConfig(size=48)


def test_critics_have_no_batchnorm_and_no_sigmoid() -> None:
    cfg = GanConfig(size=32, ngf=8, ndf=8)
    for critic in (build_stage1(cfg)[1], build_stage2(cfg)[1], build_acgan(cfg)[1]):
        kinds = {type(m) for m in critic.modules()}
        assert not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds)
        assert nn.Sigmoid not in kinds
    # the score is unbounded: scaling the head's weights scales the score beyond [0, 1]
    d = build_stage1(cfg)[1]
    with torch.no_grad():
        d.score.weight.mul_(1000.0)
    s, _ = d(torch.rand(4, 1, 32, 32) * 2 - 1)
    assert s.abs().max() > 1.0


def test_critic_is_per_sample() -> None:
    """No batch coupling (required by the per-sample gradient penalty)."""
    torch.manual_seed(1)
    d = build_stage1(GanConfig(size=32, ndf=8))[1]
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    full, _ = d(x)
    single = torch.cat([d(x[i : i + 1])[0] for i in range(5)])
    torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-5)


def test_generators_are_per_sample_in_eval() -> None:
    torch.manual_seed(2)
    g1, _ = build_stage1(GanConfig(size=32, ngf=8))
    g1.eval()
    z, y = torch.rand(4, 128), torch.tensor([[0.0, 0], [1, 0], [0, 1], [1, 1]])
    with torch.no_grad():
        torch.testing.assert_close(g1(z, y)[1:3], g1(z[1:3], y[1:3]), rtol=1e-5, atol=1e-5)


def test_refiner_starts_as_identity_and_is_conditioned() -> None:
    torch.manual_seed(3)
    g2, _ = build_stage2(GanConfig(size=32, ngf=8))
    x1 = torch.rand(3, 1, 32, 32) * 1.6 - 0.8
    y = torch.zeros(3, 14)
    torch.testing.assert_close(g2(x1, y), x1, rtol=1e-5, atol=1e-5)
    nn.init.normal_(g2.out.weight, std=0.1)
    y_card = y.clone()
    y_card[:, 1] = 1.0
    assert (g2(x1, y_card) - g2(x1, y)).abs().max() > 1e-4


def test_acgan_uses_stage1_trunks() -> None:
    cfg = GanConfig(size=64, ngf=16, ndf=16)
    g, d = build_acgan(cfg)
    g1, d1 = build_stage1(cfg)
    assert isinstance(g, Generator) and isinstance(d, Critic)
    assert g.n_labels == N_ACGAN_LABELS == 16 and d.n_classes == 16
    # same trunks: identical parameter counts apart from the label-dependent input/head rows
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(g) - n(g1) == (16 - 2) * g.fc.out_features
    assert n(d) - n(d1) == (16 - 2) * (d.classify.in_features + 1)


def test_uint8_mapping() -> None:
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.999, 1.0, 2.0])
    assert to_uint8(x).tolist() == [0, 0, 64, 128, 255, 255, 255]
    u = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(from_uint8(u)), u)


def test_models_import_does_not_init_cuda() -> None:
    import subprocess
    import sys

    code = (
        "import torch, gdgan.models, gdgan.training.api, gdgan.training.sampling, gdgan.cli.train;"
        "print(torch.cuda.is_initialized())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
