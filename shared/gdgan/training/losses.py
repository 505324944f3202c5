"""Every loss of GDGAN and ACGAN, one small function each (tests: tests/unit/test_losses.py).

WGAN-GP (Gulrajani et al. 2017) plus the auxiliary-classifier terms of Koga et al.:

- critic   ``E[D(fake)] - E[D(real)] + λ_gp·E[(‖∇D(x̂)‖₂ - 1)²]``, x̂ on random interpolates
- generator ``-E[D(fake)]``
- auxiliary ``λ·BCEWithLogits(logits, labels)`` on real and on fake images

Stage 2 (G1 and D1 frozen) adds the general-label BCE through D1's classifier and
``λ_mse·MSE(x2, x1)``; see :func:`stage2_generator_loss` and :func:`stage2_critic_loss`.
Each composite returns ``(total, parts)`` where ``parts`` holds the detached terms for logs.

The **modern mode** (``TrainConfig.loss = "hinge"`` or ``"ns"``) swaps only the adversarial
term and its regulariser; the auxiliary classifiers, frozen D1 and the MSE term stay:

- hinge (Lim & Ye 2017; BigGAN): critic ``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``,
  generator ``-E[D(fake)]``;
- non-saturating (Goodfellow et al. 2014): critic ``E[softplus(-D(real))] + E[softplus(D(fake))]``,
  generator ``E[softplus(-D(fake))]``;
- lazy R1 (Mescheder et al. 2018; StyleGAN2): ``γ/2·E[‖∇ₓD(real)‖²]`` every ``k``-th critic step,
  multiplied by ``k`` so its average weight is unchanged.

The part keys name the terms actually used (``wgan``/``gp`` in the paper mode, ``hinge`` or
``ns`` and ``r1`` in the modern one), so a loss curve never mislabels what it plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gdgan.training.options import ADV_LOSSES

Tensor = torch.Tensor


def critic_wgan_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """E[D(fake)] - E[D(real)] (the negated Wasserstein estimate the critic minimises)."""
    return d_fake.float().mean() - d_real.float().mean()


def generator_wgan_loss(d_fake: Tensor) -> Tensor:
    """-E[D(fake)]."""
    return -d_fake.float().mean()


def adv_key(kind: str) -> str:
    """The log key of an adversarial loss kind: ``wgan`` | ``hinge`` | ``ns``."""
    if kind not in ADV_LOSSES:
        raise ValueError(f"loss: unknown adversarial loss {kind!r}; known: {', '.join(ADV_LOSSES)}")
    return "wgan" if kind == "wgan-gp" else kind


def critic_adv_loss(kind: str, d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The critic's adversarial term for ``kind`` (see the module docstring)."""
    key = adv_key(kind)
    if key == "wgan":
        return critic_wgan_loss(d_real, d_fake)
    r, f = d_real.float(), d_fake.float()
    if key == "hinge":
        return F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()
    return F.softplus(-r).mean() + F.softplus(f).mean()


def generator_adv_loss(kind: str, d_fake: Tensor) -> Tensor:
    """The generator's adversarial term for ``kind``: -E[D] (wgan, hinge) or E[softplus(-D)] (ns)."""
    if adv_key(kind) == "ns":
        return F.softplus(-d_fake.float()).mean()
    return generator_wgan_loss(d_fake)


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, gamma: float) -> Tensor:
    """γ/2 · E[‖∇ₓD(x)‖₂²] on real images, fp32 with autocast off (as the gradient penalty)."""
    x = real.detach().float().requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        scores = critic(x).float()
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return 0.5 * gamma * grad.flatten(1).pow(2).sum(1).mean()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    lam: float = 10.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """λ·E[(‖∇ₓD(x̂)‖₂ - 1)²] with x̂ = ε·real + (1-ε)·fake, ε ~ U[0,1) per sample.

    ``critic`` maps images to scores (B,). Computed in float32 with autocast off: under bf16 the
    squared gradient norms lose precision and WGAN-GP is known to diverge to NaN.
    """
    real, fake = real.detach().float(), fake.detach().float()
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), generator=generator, device=real.device)
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        scores = critic(x_hat).float()
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
        norms = grad.float().flatten(1).norm(2, dim=1)
        return lam * ((norms - 1.0) ** 2).mean()


def aux_bce(
    logits: Tensor, labels: Tensor, weight: float = 1.0, col_weights: tuple[float, ...] | None = None
) -> Tensor:
    """weight · mean BCE-with-logits of multi-hot ``labels`` (the auxiliary classifier term).

    ``col_weights`` (one per label column, None = all 1) scales each column's terms before the
    mean over (B, C): a finding that is one of 14 columns can be given more say.
    Zero when there are no label columns (an unconditional stage 1: data without general labels),
    where the mean over an empty tensor would be NaN.
    """
    if labels.shape[-1] == 0:
        return logits.sum() * 0.0
    cw = None if col_weights is None else torch.tensor(col_weights, dtype=torch.float32, device=logits.device)
    return weight * F.binary_cross_entropy_with_logits(logits.float(), labels.float(), weight=cw)


@dataclass(frozen=True)
class LossWeights:
    """λ's of the auxiliary terms (all 1 in the authors' definitions) and of the GP."""

    gp: float = 10.0
    aux_real: float = 1.0
    aux_fake: float = 1.0
    general: float = 1.0  # stage 2: BCE of general labels through frozen D1
    mse: float = 1.0  # stage 2: MSE(x2, x1)
    # stage 2: per-column weights of the detail BCE (D2 real and fake, G2); None = all 1
    detail_cols: tuple[float, ...] | None = None


def stage1_critic_loss(
    d_real: Tensor,
    d_fake: Tensor,
    gp: Tensor,
    logits_real: Tensor,
    logits_fake: Tensor,
    y_real: Tensor,
    y_fake: Tensor,
    w: LossWeights,
    adv: str = "wgan-gp",
    reg: str = "gp",
) -> tuple[Tensor, dict[str, Tensor]]:
    """D1 (and the ACGAN critic): adversarial term + its regulariser ``gp`` (logged as ``reg``)
    + BCE of the labels on real and on fake images."""
    parts = {
        adv_key(adv): critic_adv_loss(adv, d_real, d_fake),
        reg: gp,
        "cls_real": aux_bce(logits_real, y_real, w.aux_real),
        "cls_fake": aux_bce(logits_fake, y_fake, w.aux_fake),
    }
    return sum(parts.values()), {k: v.detach() for k, v in parts.items()}  # type: ignore[return-value]


def stage1_generator_loss(
    d_fake: Tensor, logits_fake: Tensor, y_fake: Tensor, w: LossWeights, adv: str = "wgan-gp"
) -> tuple[Tensor, dict[str, Tensor]]:
    """G1 (and the ACGAN generator): adversarial term + BCE of the requested labels on fakes."""
    parts = {adv_key(adv): generator_adv_loss(adv, d_fake), "cls": aux_bce(logits_fake, y_fake, w.aux_fake)}
    return sum(parts.values()), {k: v.detach() for k, v in parts.items()}  # type: ignore[return-value]


def stage2_generator_loss(
    d2_fake: Tensor,  # (B,)    D2 score of x2
    detail_logits_fake: Tensor,  # (B, 14) D2 logits of x2
    general_logits_fake: Tensor,  # (B, 2)  frozen D1 logits of x2
    y_detail: Tensor,  # (B, 14) detail labels x2 was asked for
    y_general: Tensor,  # (B, 2)  general labels G1 made x1 with
    x2: Tensor,
    x1: Tensor,
    w: LossWeights,
    adv: str = "wgan-gp",
) -> tuple[Tensor, dict[str, Tensor]]:
    """G2: adversarial + BCE(detail via D2) + BCE(general via frozen D1) + λ_mse·MSE(x2, x1)."""
    parts = {
        adv_key(adv): generator_adv_loss(adv, d2_fake),
        "cls_detail": aux_bce(detail_logits_fake, y_detail, w.aux_fake, w.detail_cols),
        "cls_general": aux_bce(general_logits_fake, y_general, w.general),
        "mse": w.mse * F.mse_loss(x2.float(), x1.float()),
    }
    return sum(parts.values()), {k: v.detach() for k, v in parts.items()}  # type: ignore[return-value]


def stage2_critic_loss(
    d2_real: Tensor,
    d2_fake: Tensor,
    gp: Tensor,
    detail_logits_real: Tensor,
    detail_logits_fake: Tensor,
    general_logits_fake: Tensor,  # frozen D1 on fakes: constant for D2's gradient, logged as in the paper
    y_detail_real: Tensor,
    y_detail_fake: Tensor,
    y_general_fake: Tensor,
    w: LossWeights,
    adv: str = "wgan-gp",
    reg: str = "gp",
) -> tuple[Tensor, dict[str, Tensor]]:
    """D2: adversarial + regulariser + BCE(detail, real and fake) + BCE(general via D1 on fakes)."""
    parts = {
        adv_key(adv): critic_adv_loss(adv, d2_real, d2_fake),
        reg: gp,
        "cls_real": aux_bce(detail_logits_real, y_detail_real, w.aux_real, w.detail_cols),
        "cls_fake": aux_bce(detail_logits_fake, y_detail_fake, w.aux_fake, w.detail_cols),
        "cls_general": aux_bce(general_logits_fake, y_general_fake, w.general),
    }
    return sum(parts.values()), {k: v.detach() for k, v in parts.items()}  # type: ignore[return-value]
