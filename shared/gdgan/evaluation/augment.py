"""The five training sets of the paper's Table 2, with exact counts.

For a target finding T on one split's training part with P positives and N negatives and a
target positive share s (default 0.14 = 14,103 / 100,716 in the paper's Table 2):

- ``none``:        P positives, N negatives, as is.
- ``undersample``: keep all P positives and N' = min(N, floor(P·(1−s)/s)) random negatives
                   (drawn without replacement): the fewest drops for which P/(P+N') ≥ s.
- ``oversample``:  add k = max(0, ceil(s·N/(1−s) − P)) positives drawn with replacement from the
                   real positives: the fewest additions for which (P+k)/(P+N+k) ≥ s.
- ``acgan``/``gdgan``: add the same k synthetic positives from that GAN; their general labels
                   (gender, view) are copied from k real training positives drawn with
                   replacement, i.e. drawn from the real positives' (gender, view) mix.

Rounding: s is turned into an exact fraction (``Fraction(s).limit_denominator(10**6)``, so 0.14
is exactly 7/50) and floor/ceil are taken on exact rationals, never on floats; when the share is
already ≥ s nothing is dropped or added. For the paper's augmented row (N = 86,613) this gives
k such that P + k = 14,100 positives of 100,713; the paper's 14,103 / 100,716 is the same share
rounded differently.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from gdgan.evaluation.plan import STRATEGIES


class AugmentError(ValueError):
    """A training set cannot be built (unknown strategy, no positives ...)."""


def _exact_share(share: float) -> Fraction:
    if not 0 < share < 1:
        raise AugmentError(f"positive_share must be in (0, 1), got {share}")
    return Fraction(share).limit_denominator(10**6)


@dataclass(frozen=True)
class SetCounts:
    """One row of Table 2: what a training set holds and where it came from."""

    strategy: str
    real_positives: int
    real_negatives: int
    negatives_kept: int
    positives_added_real: int
    positives_added_synthetic: int

    @property
    def positives(self) -> int:
        return self.real_positives + self.positives_added_real + self.positives_added_synthetic

    @property
    def total(self) -> int:
        return self.positives + self.negatives_kept

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(total=self.total, positives=self.positives, share=self.positives / max(1, self.total))
        return d


def undersample_negatives(n_pos: int, n_neg: int, share: float) -> int:
    """N' = min(N, floor(P(1−s)/s)) — negatives kept by ``undersample``."""
    s = _exact_share(share)
    return min(n_neg, math.floor(n_pos * (1 - s) / s))


def positives_to_add(n_pos: int, n_neg: int, share: float) -> int:
    """k = max(0, ceil(sN/(1−s) − P)) — positives added by oversample / GAN strategies."""
    s = _exact_share(share)
    return max(0, math.ceil(s * n_neg / (1 - s) - n_pos))


def strategy_counts(strategy: str, n_pos: int, n_neg: int, share: float = 0.14) -> SetCounts:
    """Exact counts of ``strategy``'s training set for P = ``n_pos``, N = ``n_neg``."""
    if strategy not in STRATEGIES:
        raise AugmentError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if n_pos < 0 or n_neg < 0:
        raise AugmentError("counts must be non-negative")
    if strategy != "none" and n_pos == 0:
        raise AugmentError(f"strategy {strategy!r} needs at least one real positive in the training part")
    kept, add_real, add_syn = n_neg, 0, 0
    if strategy == "undersample":
        kept = undersample_negatives(n_pos, n_neg, share)
    elif strategy == "oversample":
        add_real = positives_to_add(n_pos, n_neg, share)
    elif strategy in ("acgan", "gdgan"):
        add_syn = positives_to_add(n_pos, n_neg, share)
    return SetCounts(strategy, n_pos, n_neg, kept, add_real, add_syn)


@dataclass
class TrainingSetPlan:
    """Which real training images (indices into the dataset, repeats allowed) and which synthetic
    positives (their general labels) make up one strategy's training set."""

    counts: SetCounts
    real_indices: np.ndarray  # dataset indices, duplicates for oversample
    synthetic_gender: np.ndarray  # (k,) codes 0=M 1=F
    synthetic_view: np.ndarray  # (k,) codes 0=PA 1=AP


def plan_training_set(
    strategy: str,
    train_idx: np.ndarray,
    target: np.ndarray,
    gender: np.ndarray,
    view: np.ndarray,
    share: float,
    seed: int,
) -> TrainingSetPlan:
    """Build the index plan of ``strategy`` on one split's training part.

    ``target``, ``gender`` and ``view`` are full-dataset columns; ``train_idx`` selects the
    training part. Randomness comes only from ``seed``.
    """
    train_idx = np.asarray(train_idx)
    t = np.asarray(target)[train_idx].astype(bool)
    pos, neg = train_idx[t], train_idx[~t]
    counts = strategy_counts(strategy, len(pos), len(neg), share)
    rng = np.random.default_rng(seed)
    empty = np.zeros(0, dtype=np.uint8)
    real = train_idx
    syn_g, syn_v = empty, empty
    if strategy == "undersample":
        keep = np.sort(rng.choice(neg, size=counts.negatives_kept, replace=False))
        real = np.sort(np.concatenate([pos, keep]))
    elif strategy == "oversample":
        extra = rng.choice(pos, size=counts.positives_added_real, replace=True)
        real = np.concatenate([train_idx, extra])
    elif strategy in ("acgan", "gdgan"):
        donors = rng.choice(pos, size=counts.positives_added_synthetic, replace=True)
        syn_g = np.asarray(gender)[donors].astype(np.uint8)
        syn_v = np.asarray(view)[donors].astype(np.uint8)
    return TrainingSetPlan(counts, real, syn_g, syn_v)


def label_mix(gender: np.ndarray, view: np.ndarray) -> dict[str, float]:
    """Shares of the four (gender, view) groups, e.g. {"F/AP": 0.3, ...}."""
    n = max(1, len(gender))
    return {
        f"{gn}/{vn}": float(((gender == gi) & (view == vi)).sum() / n)
        for gi, gn in enumerate(("M", "F"))
        for vi, vn in enumerate(("PA", "AP"))
    }
