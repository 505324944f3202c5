"""What one critic step and one generator step compute, per training phase.

- :class:`ConditionalPhase` — stage 1 (labels = general) and the ACGAN baseline (labels =
  general ⊕ detail): the same WGAN-GP + auxiliary-classifier game.
- :class:`Stage2Phase` — G2 refines images of the **frozen** G1 (its EMA weights) and is judged
  by D2 and by the **frozen** D1's general-label classifier.

The general labels fed to G1 in stage 2 are those of randomly drawn training rows (a sample
of the training data's (gender, view) distribution); the detail labels are the real batch's.
Both come from the same rows, so the joint (gender, view, finding) statistics of the training
data are kept — Cardiomegaly is commoner in AP views and in women, and G2 sees that.

The loop (:mod:`gdgan.training.loop`) owns optimisers, EMA, RNG and checkpoints; a phase only
maps a batch to ``(loss, parts)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gdgan.models.acgan import acgan_labels
from gdgan.training import losses as L

Tensor = torch.Tensor


@dataclass
class Batch:
    x: Tensor  # (B, 1, S, S) real images in [-1, 1]
    general: Tensor  # (B, 2)
    detail: Tensor  # (B, 14)


class ConditionalPhase:
    """Stage 1 (``use_detail=False``) or ACGAN (``use_detail=True``)."""

    def __init__(self, name: str, G: nn.Module, D: nn.Module, nz: int, w: L.LossWeights, use_detail: bool):
        self.name, self.G, self.D, self.nz, self.w, self.use_detail = name, G, D, nz, w, use_detail

    def labels(self, b: Batch) -> Tensor:
        return acgan_labels(b.general, b.detail) if self.use_detail else b.general

    def fake(self, y: Tensor, gen: torch.Generator) -> Tensor:
        z = torch.rand(y.shape[0], self.nz, generator=gen, device=y.device)  # z ~ U[0,1)^nz
        return self.G(z, y)

    def critic_loss(self, b: Batch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        y = self.labels(b)
        with torch.no_grad():
            x_fake = self.fake(y, gen)
        d_real, logit_real = self.D(b.x)
        d_fake, logit_fake = self.D(x_fake)
        gp = L.gradient_penalty(lambda x: self.D(x)[0], b.x, x_fake, self.w.gp, generator=gen)
        return L.stage1_critic_loss(d_real, d_fake, gp, logit_real, logit_fake, y, y, self.w)

    def generator_loss(self, b: Batch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        y = self.labels(b)
        d_fake, logit_fake = self.D(self.fake(y, gen))
        return L.stage1_generator_loss(d_fake, logit_fake, y, self.w)


class Stage2Phase:
    """G2/D2 against frozen G1 (EMA weights) and frozen D1."""

    name = "stage2"

    def __init__(self, G: nn.Module, D: nn.Module, G1: nn.Module, D1: nn.Module, nz: int, w: L.LossWeights):
        self.G, self.D, self.G1, self.D1, self.nz, self.w = G, D, G1, D1, nz, w
        for m in (G1, D1):
            m.eval()
            m.requires_grad_(False)

    def stage1(self, general: Tensor, gen: torch.Generator) -> Tensor:
        z = torch.rand(general.shape[0], self.nz, generator=gen, device=general.device)
        with torch.no_grad():
            return self.G1(z, general)  # (B, 1, S, S)

    def critic_loss(self, b: Batch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        x1 = self.stage1(b.general, gen)
        with torch.no_grad():
            x2 = self.G(x1, b.detail)
            general_logits = self.D1(x2)[1]
        d_real, detail_real = self.D(b.x)
        d_fake, detail_fake = self.D(x2)
        gp = L.gradient_penalty(lambda x: self.D(x)[0], b.x, x2, self.w.gp, generator=gen)
        return L.stage2_critic_loss(
            d_real,
            d_fake,
            gp,
            detail_real,
            detail_fake,
            general_logits,
            b.detail,
            b.detail,
            b.general,
            self.w,
        )

    def generator_loss(self, b: Batch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        x1 = self.stage1(b.general, gen)
        x2 = self.G(x1, b.detail)
        d_fake, detail_logits = self.D(x2)
        general_logits = self.D1(x2)[1]  # gradients flow to x2, never into D1's frozen weights
        return L.stage2_generator_loss(
            d_fake, detail_logits, general_logits, b.detail, b.general, x2, x1, self.w
        )
