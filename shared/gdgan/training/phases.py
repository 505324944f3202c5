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
maps a batch to ``(loss, parts)``. How the critic game is scored — the paper's WGAN-GP or the
modern hinge / non-saturating loss with lazy R1, with or without DiffAugment — is a
:class:`Recipe`; its default is the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gdgan.models.acgan import acgan_labels
from gdgan.training import losses as L
from gdgan.training.diffaugment import DiffAugment

Tensor = torch.Tensor


@dataclass(frozen=True)
class Recipe:
    """The adversarial game: loss kind, its regulariser and the critic's view of images.

    ``loss="wgan-gp"`` (the paper) regularises every critic step with the gradient penalty;
    ``"hinge"`` / ``"ns"`` use lazy R1 (``r1_gamma`` every ``r1_every``-th critic step, scaled by
    ``r1_every``). ``diffaug`` is a DiffAugment policy ("" = off) applied to every image the
    trained critic sees, in critic and generator steps alike.
    """

    loss: str = "wgan-gp"
    r1_gamma: float = 0.0
    r1_every: int = 4
    diffaug: str = ""

    def __post_init__(self) -> None:
        L.adv_key(self.loss)  # names an unknown loss
        if self.r1_every < 1:
            raise ValueError(f"r1_every: must be >= 1, got {self.r1_every}")

    @property
    def reg_name(self) -> str:
        return "gp" if self.loss == "wgan-gp" else "r1"


class _Game:
    """What both phases share: augmentation and the regulariser of one critic step."""

    recipe: Recipe
    aug: DiffAugment
    critic_iter: int = 0  # set by the loop before each critic step (lazy R1 is keyed on it)

    def _setup(self, recipe: Recipe | None) -> None:
        self.recipe = recipe or Recipe()
        self.aug = DiffAugment(self.recipe.diffaug)

    def score(
        self, D: nn.Module, *xs: Tensor, y: Tensor, gen: torch.Generator
    ) -> list[tuple[Tensor, Tensor]]:
        """D on each of ``xs`` after one shared DiffAugment draw (identity when off); ``y`` are
        the labels of every x (a projection critic uses them, others ignore them)."""
        views = self.aug(*xs, generator=gen) if self.aug else xs
        core = getattr(D, "module", D)  # a DDP-wrapped critic
        n = views[0].shape[0]
        stack = getattr(core, "stacks_exactly", None)
        if len(views) > 1 and stack is not None and stack(n, len(views)):
            # one critic call on real ⊕ fake instead of two: the same per-sample scores (see
            # Critic.stacks_exactly), ~20 % less CPU for the critic at the demo's sizes, where
            # per-call overheads of the small convolutions dominate
            score, logits = D(torch.cat(views), torch.cat([y] * len(views)))
            return list(zip(score.split(n), logits.split(n), strict=True))
        return [D(x, y) for x in views]

    def regulariser(
        self, D: nn.Module, real: Tensor, fake: Tensor, y: Tensor, gen: torch.Generator, gp_lambda: float
    ) -> Tensor:
        r = self.recipe
        if r.loss == "wgan-gp":
            return L.gradient_penalty(
                lambda x: self._aug_score(D, x, y, gen), real, fake, gp_lambda, generator=gen
            )
        if r.r1_gamma > 0 and self.critic_iter % r.r1_every == 0:
            return r.r1_every * L.r1_penalty(lambda x: self._aug_score(D, x, y, gen), real, r.r1_gamma)
        return real.new_zeros((), dtype=torch.float32)

    def _aug_score(self, D: nn.Module, x: Tensor, y: Tensor, gen: torch.Generator) -> Tensor:
        return D(self.aug(x, generator=gen)[0] if self.aug else x, y)[0]


@dataclass
class Batch:
    x: Tensor  # (B, 1, S, S) real images in [-1, 1]
    general: Tensor  # (B, 2)
    detail: Tensor  # (B, 14)


class ConditionalPhase(_Game):
    """Stage 1 (``use_detail=False``) or ACGAN (``use_detail=True``)."""

    def __init__(
        self,
        name: str,
        G: nn.Module,
        D: nn.Module,
        nz: int,
        w: L.LossWeights,
        use_detail: bool,
        recipe: Recipe | None = None,
    ):
        self.name, self.G, self.D, self.nz, self.w, self.use_detail = name, G, D, nz, w, use_detail
        self._setup(recipe)

    def labels(self, b: Batch) -> Tensor:
        return acgan_labels(b.general, b.detail) if self.use_detail else b.general

    def fake(self, y: Tensor, gen: torch.Generator) -> Tensor:
        z = torch.rand(y.shape[0], self.nz, generator=gen, device=y.device)  # z ~ U[0,1)^nz
        return self.G(z, y)

    def critic_loss(self, b: Batch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        y = self.labels(b)
        with torch.no_grad():
            x_fake = self.fake(y, gen)
        (d_real, logit_real), (d_fake, logit_fake) = self.score(self.D, b.x, x_fake, y=y, gen=gen)
        reg = self.regulariser(self.D, b.x, x_fake, y, gen, self.w.gp)
        r = self.recipe
        return L.stage1_critic_loss(
            d_real, d_fake, reg, logit_real, logit_fake, y, y, self.w, r.loss, r.reg_name
        )

    def generator_loss(self, b: Batch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        y = self.labels(b)
        ((d_fake, logit_fake),) = self.score(self.D, self.fake(y, gen), y=y, gen=gen)
        return L.stage1_generator_loss(d_fake, logit_fake, y, self.w, self.recipe.loss)


class Stage2Phase(_Game):
    """G2/D2 against frozen G1 (EMA weights) and frozen D1 (which always sees un-augmented x2)."""

    name = "stage2"

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        G1: nn.Module,
        D1: nn.Module,
        nz: int,
        w: L.LossWeights,
        recipe: Recipe | None = None,
    ):
        self.G, self.D, self.G1, self.D1, self.nz, self.w = G, D, G1, D1, nz, w
        self._setup(recipe)
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
            general_logits = self.D1(x2, b.general)[1]
        (d_real, detail_real), (d_fake, detail_fake) = self.score(self.D, b.x, x2, y=b.detail, gen=gen)
        gp = self.regulariser(self.D, b.x, x2, b.detail, gen, self.w.gp)
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
            self.recipe.loss,
            self.recipe.reg_name,
        )

    def generator_loss(self, b: Batch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        x1 = self.stage1(b.general, gen)
        x2 = self.G(x1, b.detail)
        ((d_fake, detail_logits),) = self.score(self.D, x2, y=b.detail, gen=gen)
        general_logits = self.D1(x2, b.general)[1]  # gradients flow to x2, never into D1's frozen weights
        return L.stage2_generator_loss(
            d_fake, detail_logits, general_logits, b.detail, b.general, x2, x1, self.w, self.recipe.loss
        )
