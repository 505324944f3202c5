"""The training step's faster forms compute what the plain forms compute (docs/notes/training.md,
"Speed"): each rewrite against an independent reference — NumPy closed forms, the per-tensor
Adam and ``lerp_`` paths, PyTorch's default kernels, separate critic calls."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from gdgan.models.gdgan import Critic, GanConfig, ImageConvTranspose2d, Refiner, minibatch_stddev
from gdgan.training.diffaugment import DiffAugment, translate
from gdgan.training.loop import ema_update, make_adam, use_fused
from gdgan.training.losses import LossWeights
from gdgan.training.phases import ConditionalPhase, Recipe
from gdgan.training.presets import get_config
from torch import nn


def _np_mbstd_grad(h: np.ndarray, g: int) -> np.ndarray:
    """d(sum of each group's mbstd figure)/dh in closed form: for s = mean_f sqrt(var_f + 1e-8)
    over a group of g samples, ds/dx_if = (x_if - mean_f) / (g · F · sqrt(var_f + 1e-8))."""
    B = h.shape[0]
    x = h.reshape(B // g, g, -1)
    mu = x.mean(axis=1, keepdims=True)
    sd = np.sqrt(((x - mu) ** 2).mean(axis=1, keepdims=True) + 1e-8)
    return ((x - mu) / (g * x.shape[2] * sd)).reshape(h.shape)


@pytest.mark.parametrize(("B", "group"), [(8, 4), (32, 4), (6, 4)])
def test_minibatch_stddev_gradient_equals_the_closed_form(B: int, group: int) -> None:
    h = torch.from_numpy(np.random.default_rng(B).normal(size=(B, 6, 4, 4))).requires_grad_(True)
    g = max(d for d in range(1, group + 1) if B % d == 0)
    out = minibatch_stddev(h, group)
    # the extra map holds the group's figure at every pixel of each sample: pick one per group
    out[::g, -1, 0, 0].sum().backward()
    assert h.grad is not None
    np.testing.assert_allclose(h.grad.numpy(), _np_mbstd_grad(h.detach().numpy(), g), rtol=1e-6, atol=1e-9)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.GroupNorm(2, 8), nn.Flatten(), nn.Linear(8 * 30 * 30, 3))


def test_fused_adam_follows_the_per_tensor_adam() -> None:
    """50 steps of the demo's Adam on the same gradients: the fused kernel and torch's per-tensor
    reference land on the same parameters (1e-6)."""
    cfg = get_config("demo")
    a, b = _net(), _net()
    fast = make_adam(a.parameters(), cfg, torch.device("cpu"))
    ref = torch.optim.Adam(b.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), foreach=False)
    assert fast.param_groups[0]["fused"]
    rng = torch.Generator().manual_seed(1)
    for _ in range(50):
        for pa, pb in zip(a.parameters(), b.parameters()):
            grad = torch.randn(pa.shape, generator=rng)
            pa.grad, pb.grad = grad.clone(), grad.clone()
        fast.step()
        ref.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6)


def test_a_resumed_per_tensor_adam_state_runs_fused_with_the_same_state() -> None:
    """A checkpoint written by the per-tensor Adam (its param_groups say foreach=None) resumes
    into the fused kernel, with the moments it saved."""
    cfg = get_config("demo")
    old_net = _net()
    old = torch.optim.Adam(old_net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    for p in old_net.parameters():
        p.grad = torch.ones_like(p)
    old.step()
    net = copy.deepcopy(old_net)
    opt = make_adam(net.parameters(), cfg, torch.device("cpu"))
    opt.load_state_dict(old.state_dict())
    assert not opt.param_groups[0]["fused"]  # what the checkpoint said
    use_fused(opt, torch.device("cpu"))
    assert opt.param_groups[0]["fused"] and opt.param_groups[0]["foreach"] is None
    first = next(iter(opt.state.values()))
    torch.testing.assert_close(first["exp_avg"], next(iter(old.state.values()))["exp_avg"])


def test_foreach_ema_equals_per_parameter_lerp() -> None:
    model, ema = _net(), _net()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ref = copy.deepcopy(ema)
    ema_update(ema, model, 0.995)
    with torch.no_grad():
        for pr, pm in zip(ref.parameters(), model.parameters()):
            pr.copy_(pr + (1 - 0.995) * (pm - pr))  # the EMA formula, written out
    for pe, pr in zip(ema.parameters(), ref.parameters()):
        torch.testing.assert_close(pe, pr, rtol=0, atol=1e-7)


def test_image_layer_equals_the_default_transposed_convolution() -> None:
    """Forward and every gradient of the CPU kernel equal PyTorch's default (oneDNN) path."""
    torch.manual_seed(2)
    fast = ImageConvTranspose2d(16, 1, 4, 2, 1)
    ref = nn.ConvTranspose2d(16, 1, 4, 2, 1)
    ref.load_state_dict(fast.state_dict())  # same weight keys
    x = torch.randn(8, 16, 16, 16)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = fast(xa), ref(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
    w = torch.randn_like(ya)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-5)
    for pa, pb in zip(fast.parameters(), ref.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-4)


def test_refiner_output_layer_equals_a_plain_convolution() -> None:
    """G2's last convolution (run on channels-last input on the CPU) against F.conv2d on the
    contiguous input: the refined image is the same."""
    torch.manual_seed(3)
    g2 = Refiner(GanConfig(size=32, ngf=16), 14).eval()
    with torch.no_grad():
        for p in g2.out.parameters():
            p.normal_(0, 0.1)  # the layer starts at zero: give it something to compute
    seen: dict[str, torch.Tensor] = {}
    g2.out.register_forward_hook(lambda _m, inp, out: seen.update(h=inp[0], out=out))
    x1 = torch.rand(4, 1, 32, 32) * 2 - 1
    y = (torch.rand(4, 14) > 0.7).float()
    with torch.no_grad():
        g2(x1, y)
        plain = torch.nn.functional.conv2d(seen["h"].contiguous(), g2.out.weight, g2.out.bias, padding=1)
    torch.testing.assert_close(seen["out"], plain, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("batch", "mbstd", "stacks"), [(32, 4, True), (8, 0, True), (9, 4, True), (6, 4, False), (5, 4, False)]
)
def test_one_critic_call_on_real_and_fake_scores_as_two(batch: int, mbstd: int, stacks: bool) -> None:
    """The critic step scores real ⊕ fake in one call when that gives each image its own
    batch's score (minibatch-stddev groups inside each part); the scores equal two separate
    calls on the same DiffAugment draw. Batch 6 with groups of 4 would mix real and fake in a
    group (3 + 3 -> 4): it falls back to two calls."""
    torch.manual_seed(4)
    cfg = GanConfig(size=32, ndf=8, mbstd=mbstd, projection=True)
    d = Critic(cfg, 3)
    assert d.stacks_exactly(batch, 2) is stacks
    phase = ConditionalPhase(
        "stage1", nn.Identity(), d, 8, LossWeights(), False, Recipe(diffaug="translation")
    )
    real, fake = torch.rand(batch, 1, 32, 32) * 2 - 1, torch.rand(batch, 1, 32, 32) * 2 - 1
    y = (torch.rand(batch, 3) > 0.5).float()
    got = phase.score(d, real, fake, y=y, gen=torch.Generator().manual_seed(7))
    views = DiffAugment("translation")(real, fake, generator=torch.Generator().manual_seed(7))
    for (score, logits), view in zip(got, views, strict=True):
        ref_score, ref_logits = d(view, y)
        torch.testing.assert_close(score, ref_score, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)


def test_translation_gradient_is_the_inverse_shift() -> None:
    """d(sum(out · w))/dx for out[b, :, i, j] = x[b, :, i - dy, j - dx]: the upstream grad moved
    back by (dy, dx), zero where a pixel was shifted out of the image (written in NumPy)."""
    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.normal(size=(5, 2, 8, 8))).requires_grad_(True)
    dy, dx = torch.tensor([0, 2, -3, 1, -1]), torch.tensor([1, -2, 0, 3, -1])
    out = translate(x, dy, dx, fill=-1.0, max_shift=3)
    w = rng.normal(size=out.shape)
    (out * torch.from_numpy(w)).sum().backward()
    ref = np.zeros(x.shape)
    for b in range(5):
        for p in range(8):
            for q in range(8):
                i, j = p + int(dy[b]), q + int(dx[b])
                if 0 <= i < 8 and 0 <= j < 8:
                    ref[b, :, p, q] = w[b, :, i, j]
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), ref)
    cl = torch.randn(3, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    assert translate(cl, dy[:3], dx[:3], max_shift=3).is_contiguous(memory_format=torch.channels_last)
