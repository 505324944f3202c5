"""The ACGAN baseline: one stage conditioned on all labels (general ⊕ detail, 2 + 14 = 16).

For a fair comparison with GDGAN it reuses stage 1's trunks unchanged — the same
:class:`~gdgan.models.gdgan.Generator` and :class:`~gdgan.models.gdgan.Critic` at the same
widths — and differs only in the label vector: ``G(z (B, nz), [y_general, y_detail] (B, 16))
-> x (B, 1, S, S)`` and ``D(x) -> (score (B,), logits (B, 16))`` (no sigmoid, no batch-norm).
"""

from __future__ import annotations

import torch

from gdgan.labels import N_FINDINGS, N_GENERAL
from gdgan.models.gdgan import Critic, GanConfig, Generator

N_ACGAN_LABELS = N_GENERAL + N_FINDINGS


def acgan_labels(general: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
    """(B, 2) ⊕ (B, 14) -> (B, 16): the general columns first, as the critic's logits."""
    return torch.cat([general, detail], dim=1)


def build_acgan(cfg: GanConfig, n_labels: int = N_ACGAN_LABELS) -> tuple[Generator, Critic]:
    """``n_labels`` = the schema's general + detail columns (NIH: 16)."""
    return Generator(cfg, n_labels), Critic(cfg, n_labels)
