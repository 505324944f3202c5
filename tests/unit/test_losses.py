"""Each loss term against a hand computation (numpy / closed forms), not against itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gdgan.training import losses as L


def _np_bce(logits: np.ndarray, y: np.ndarray) -> float:
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def test_gradient_penalty_linear_critic_closed_form() -> None:
    """D(x) = w·x has ∇D = w everywhere, so GP = λ(‖w‖ - 1)² whatever the interpolates."""
    torch.manual_seed(0)
    w = torch.randn(1, 1, 8, 8)
    real, fake = torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8)
    gp = L.gradient_penalty(lambda x: (x * w).flatten(1).sum(1), real, fake, lam=10.0)
    expected = 10.0 * (w.norm().item() - 1.0) ** 2
    assert gp.item() == pytest.approx(expected, rel=1e-5)
    unit = w / w.norm()
    gp0 = L.gradient_penalty(lambda x: (x * unit).flatten(1).sum(1), real, fake, lam=10.0)
    assert gp0.item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_penalty_uses_interpolates() -> None:
    """D(x) = ½‖x‖² has ∇D(x̂) = x̂; with real = fake = x0 every x̂ is x0 -> λ·mean((‖x0ᵢ‖-1)²)."""
    x0 = torch.randn(4, 1, 6, 6)
    gp = L.gradient_penalty(lambda x: 0.5 * (x**2).flatten(1).sum(1), x0, x0.clone(), lam=3.0)
    norms = x0.flatten(1).norm(dim=1).numpy()
    assert gp.item() == pytest.approx(3.0 * np.mean((norms - 1.0) ** 2), rel=1e-5)
    # and the interpolation weights are random per sample: with real = 0 and fake = x0, x̂ = (1-ε)x0
    g = torch.Generator().manual_seed(1)
    eps = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(1))
    gp2 = L.gradient_penalty(
        lambda x: 0.5 * (x**2).flatten(1).sum(1), torch.zeros_like(x0), x0, lam=1.0, generator=g
    )
    expected = np.mean(((1 - eps.flatten().numpy()) * norms - 1.0) ** 2)
    assert gp2.item() == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_fp32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 1)
    real, fake = torch.randn(8, 64), torch.randn(8, 64)
    ref = L.gradient_penalty(
        lambda x: lin(x).squeeze(1), real, fake, generator=torch.Generator().manual_seed(0)
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = L.gradient_penalty(
            lambda x: lin(x).squeeze(1), real, fake, generator=torch.Generator().manual_seed(0)
        )
    assert amp.dtype == torch.float32
    assert amp.item() == pytest.approx(ref.item(), rel=1e-6)
    assert amp.item() == pytest.approx(10 * (lin.weight.norm().item() - 1) ** 2, rel=1e-5)


def test_wgan_terms() -> None:
    d_real, d_fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0, 5.0])
    assert L.critic_wgan_loss(d_real, d_fake).item() == pytest.approx(1.0 - 2.0)
    assert L.generator_wgan_loss(d_fake).item() == pytest.approx(-1.0)


def test_aux_bce_matches_numpy_and_weight() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 14)).astype(np.float32)
    y = (rng.random((6, 14)) < 0.3).astype(np.float32)
    got = L.aux_bce(torch.from_numpy(logits), torch.from_numpy(y), weight=2.5).item()
    assert got == pytest.approx(2.5 * _np_bce(logits, y), rel=1e-5)


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def test_stage1_losses_are_sums_of_terms() -> None:
    w = L.LossWeights(aux_real=0.5, aux_fake=2.0)
    d_real, d_fake = _rand(4, seed=1), _rand(4, seed=2)
    lr, lf = _rand(4, 2, seed=3), _rand(4, 2, seed=4)
    y = torch.tensor([[0, 1], [1, 1], [0, 0], [1, 0]], dtype=torch.float32)
    gp = torch.tensor(0.7)
    total, parts = L.stage1_critic_loss(d_real, d_fake, gp, lr, lf, y, y, w)
    expected = (
        (d_fake.mean() - d_real.mean()).item()
        + 0.7
        + 0.5 * _np_bce(lr.numpy(), y.numpy())
        + 2.0 * _np_bce(lf.numpy(), y.numpy())
    )
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert set(parts) == {"wgan", "gp", "cls_real", "cls_fake"}
    gtotal, gparts = L.stage1_generator_loss(d_fake, lf, y, w)
    assert gtotal.item() == pytest.approx(
        -d_fake.mean().item() + 2.0 * _np_bce(lf.numpy(), y.numpy()), rel=1e-5
    )
    assert set(gparts) == {"wgan", "cls"}


def test_stage2_generator_loss_terms() -> None:
    w = L.LossWeights(aux_fake=1.0, general=0.5, mse=3.0)
    d2 = _rand(4, seed=5)
    det_logits, gen_logits = _rand(4, 14, seed=6), _rand(4, 2, seed=7)
    y_det = (torch.rand(4, 14, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    y_gen = torch.tensor([[0, 1], [1, 1], [0, 0], [1, 0]], dtype=torch.float32)
    x1 = torch.tanh(_rand(4, 1, 8, 8, seed=8))
    x2 = torch.tanh(_rand(4, 1, 8, 8, seed=9))
    total, parts = L.stage2_generator_loss(d2, det_logits, gen_logits, y_det, y_gen, x2, x1, w)
    hand = {
        "wgan": -d2.mean().item(),
        "cls_detail": _np_bce(det_logits.numpy(), y_det.numpy()),
        "cls_general": 0.5 * _np_bce(gen_logits.numpy(), y_gen.numpy()),
        "mse": 3.0 * float(np.mean((x2.numpy() - x1.numpy()) ** 2)),
    }
    for k, v in hand.items():
        assert parts[k].item() == pytest.approx(v, rel=1e-5), k
    assert total.item() == pytest.approx(sum(hand.values()), rel=1e-5)


def test_stage2_critic_loss_terms() -> None:
    w = L.LossWeights(aux_real=1.0, aux_fake=1.0, general=2.0)
    d_real, d_fake = _rand(4, seed=10), _rand(4, seed=11)
    lr, lf, lg = _rand(4, 14, seed=12), _rand(4, 14, seed=13), _rand(4, 2, seed=14)
    y_real = (torch.rand(4, 14, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    y_fake = (torch.rand(4, 14, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    y_gen = torch.tensor([[1, 1], [1, 0], [0, 0], [0, 1]], dtype=torch.float32)
    gp = torch.tensor(1.25)
    total, parts = L.stage2_critic_loss(d_real, d_fake, gp, lr, lf, lg, y_real, y_fake, y_gen, w)
    hand = {
        "wgan": d_fake.mean().item() - d_real.mean().item(),
        "gp": 1.25,
        "cls_real": _np_bce(lr.numpy(), y_real.numpy()),
        "cls_fake": _np_bce(lf.numpy(), y_fake.numpy()),
        "cls_general": 2.0 * _np_bce(lg.numpy(), y_gen.numpy()),
    }
    for k, v in hand.items():
        assert parts[k].item() == pytest.approx(v, rel=1e-5), k
    assert total.item() == pytest.approx(sum(hand.values()), rel=1e-5)


def _stage2_g_loss(x2: torch.Tensor, x1: torch.Tensor, d1: torch.nn.Module, mse: float) -> torch.Tensor:
    """Stage-2 generator loss with only the general-label term (through ``d1``) and the MSE."""
    total, parts = L.stage2_generator_loss(
        torch.zeros(2),
        torch.zeros(2, 14),
        d1(x2.flatten(1)),
        torch.zeros(2, 14),
        torch.ones(2, 2),
        x2,
        x1,
        L.LossWeights(mse=mse),
    )
    assert parts["mse"].item() == pytest.approx(mse * torch.mean((x2 - x1) ** 2).item())
    return total


def test_stage2_generator_gradient_reaches_x2_only() -> None:
    """The general-label term pushes x2 (through D1) but the MSE anchor has zero gradient at x2 = x1."""
    x1 = torch.tanh(_rand(2, 1, 4, 4, seed=20))
    lin = torch.nn.Linear(16, 2)
    for p in lin.parameters():
        p.requires_grad_(False)
    grads = []
    for mse in (1.0, 0.0, 100.0):  # λ_mse: the total gradient at x2 = x1 must not depend on it
        x2 = x1.clone().requires_grad_(True)
        _stage2_g_loss(x2, x1, lin, mse).backward()
        assert x2.grad is not None
        grads.append(x2.grad)
    assert grads[0].abs().sum() > 0
    assert all(p.grad is None for p in lin.parameters())
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)
    torch.testing.assert_close(grads[2], grads[0], rtol=0, atol=0)
    mse_only = x1.clone().requires_grad_(True)
    torch.nn.functional.mse_loss(mse_only, x1).backward()
    assert mse_only.grad is not None and mse_only.grad.abs().max() == 0.0


def test_stage2_phase_under_bf16_autocast_with_saturated_stage1() -> None:
    """Stage 2 on a G1 whose pixels are all ±1 (bf16 under autocast): finite losses, and G2 still
    gets a gradient. Before the logit residual ran in fp32, x2 stuck at ±1 and G2's gradient
    through the image was exactly zero. Losses within 5 % of fp32 (bf16 convolutions); the
    gradient of G2's last bias only in sign (bf16 critics move its size by tens of %)."""
    from gdgan.models import GanConfig, build_stage1, build_stage2
    from gdgan.training.phases import Batch, Stage2Phase

    torch.manual_seed(0)
    cfg = GanConfig(size=32, ngf=8, ndf=8, nz=16)
    g1, d1 = build_stage1(cfg)
    torch.nn.init.zeros_(g1.out.weight)
    with torch.no_grad():
        g1.out.bias.fill_(50.0)  # tanh(50) = 1: every stage-1 pixel saturated
    g2, d2 = build_stage2(cfg)
    torch.nn.init.normal_(g2.out.weight, std=0.05)
    torch.nn.init.constant_(g2.out.bias, -2.0)
    phase = Stage2Phase(g2, d2, g1, d1, cfg.nz, L.LossWeights())
    b = Batch(torch.rand(4, 1, 32, 32) * 2 - 1, torch.tensor([[0.0, 1.0]] * 4), torch.zeros(4, 14))

    def run(amp: bool) -> tuple[float, float, torch.Tensor]:
        g2.zero_grad()
        d2.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss_d, _ = phase.critic_loss(b, torch.Generator().manual_seed(1))
        loss_d.backward()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss_g, _ = phase.generator_loss(b, torch.Generator().manual_seed(2))
        g2.zero_grad()
        loss_g.backward()
        assert g2.out.bias.grad is not None
        return loss_d.item(), loss_g.item(), g2.out.bias.grad.clone()

    d32, g32, grad32 = run(False)
    d16, g16, grad16 = run(True)
    assert all(np.isfinite([d16, g16])) and torch.isfinite(grad16).all()
    assert grad16.abs().item() > 1e-3
    assert d16 == pytest.approx(d32, rel=0.05) and g16 == pytest.approx(g32, rel=0.05)
    assert grad16.sign() == grad32.sign()  # the size differs by tens of % through bf16 critics


# --- the modern mode: hinge / non-saturating losses and lazy R1 -------------------------------
def test_hinge_and_ns_terms_closed_form() -> None:
    d_real, d_fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0, 0.25])
    # hinge: mean(max(0, 1 - r)) + mean(max(0, 1 + f))
    hinge = np.mean([0.0, 0.5, 2.0]) + np.mean([0.0, 1.0, 1.25])
    assert L.critic_adv_loss("hinge", d_real, d_fake).item() == pytest.approx(hinge, rel=1e-6)
    assert L.generator_adv_loss("hinge", d_fake).item() == pytest.approx(-np.mean([-3.0, 0.0, 0.25]))
    # non-saturating: -log σ(r) - log(1 - σ(f)); generator -log σ(f)
    sig = lambda v: 1 / (1 + np.exp(-np.asarray(v)))  # noqa: E731
    ns = np.mean(-np.log(sig([2.0, 0.5, -1.0]))) + np.mean(-np.log(1 - sig([-3.0, 0.0, 0.25])))
    assert L.critic_adv_loss("ns", d_real, d_fake).item() == pytest.approx(ns, rel=1e-6)
    assert L.generator_adv_loss("ns", d_fake).item() == pytest.approx(
        np.mean(-np.log(sig([-3.0, 0.0, 0.25]))), rel=1e-6
    )
    assert L.critic_adv_loss("wgan-gp", d_real, d_fake).item() == pytest.approx(
        L.critic_wgan_loss(d_real, d_fake).item()
    )
    with pytest.raises(ValueError, match="loss"):
        L.adv_key("lsgan")


def test_r1_penalty_closed_forms() -> None:
    """D(x) = w·x: ∇D = w, so R1 = γ/2·‖w‖²; D(x) = ½‖x‖²: R1 = γ/2·mean‖xᵢ‖²."""
    torch.manual_seed(0)
    w = torch.randn(1, 1, 6, 6)
    real = torch.randn(5, 1, 6, 6)
    r1 = L.r1_penalty(lambda x: (x * w).flatten(1).sum(1), real, gamma=3.0)
    assert r1.item() == pytest.approx(1.5 * (w.norm() ** 2).item(), rel=1e-5)
    r1q = L.r1_penalty(lambda x: 0.5 * (x**2).flatten(1).sum(1), real, gamma=2.0)
    assert r1q.item() == pytest.approx((real.flatten(1).norm(dim=1) ** 2).mean().item(), rel=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lin = torch.nn.Linear(36, 1)
        amp = L.r1_penalty(lambda x: lin(x.flatten(1)).squeeze(1), real, gamma=2.0)
    assert amp.dtype == torch.float32
    assert amp.item() == pytest.approx((lin.weight.norm() ** 2).item(), rel=1e-5)


def test_modern_composites_name_their_terms() -> None:
    w = L.LossWeights()
    d_real, d_fake = _rand(4, seed=1), _rand(4, seed=2)
    lr, lf = _rand(4, 2, seed=3), _rand(4, 2, seed=4)
    y = torch.tensor([[0, 1], [1, 1], [0, 0], [1, 0]], dtype=torch.float32)
    total, parts = L.stage1_critic_loss(d_real, d_fake, torch.tensor(0.2), lr, lf, y, y, w, "hinge", "r1")
    assert set(parts) == {"hinge", "r1", "cls_real", "cls_fake"}
    expected = (
        (torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()).item()
        + 0.2
        + _np_bce(lr.numpy(), y.numpy())
        + _np_bce(lf.numpy(), y.numpy())
    )
    assert total.item() == pytest.approx(expected, rel=1e-5)
    _, gparts = L.stage1_generator_loss(d_fake, lf, y, w, "ns")
    assert set(gparts) == {"ns", "cls"}


def test_lazy_r1_every_kth_critic_step_scaled_by_k() -> None:
    """The phase applies R1 only when critic_iter % r1_every == 0, multiplied by r1_every."""
    from gdgan.models.gdgan import GanConfig, build_stage1
    from gdgan.training.phases import Batch, ConditionalPhase, Recipe

    torch.manual_seed(0)
    G, D = build_stage1(GanConfig(size=32, ngf=8, ndf=8))
    ph = ConditionalPhase("stage1", G, D, 128, L.LossWeights(), False, Recipe("hinge", 2.0, 3))
    b = Batch(torch.rand(4, 1, 32, 32) * 2 - 1, torch.ones(4, 2), torch.zeros(4, 14))
    regs = []
    for it in range(4):
        ph.critic_iter = it
        _, parts = ph.critic_loss(b, torch.Generator().manual_seed(0))
        regs.append(parts["r1"].item())
    assert regs[1] == regs[2] == 0.0 and regs[0] > 0
    expected = 3 * L.r1_penalty(lambda x: D(x)[0], b.x, 2.0).item()
    assert regs[0] == pytest.approx(expected, rel=1e-5) and regs[3] == pytest.approx(expected, rel=1e-5)
