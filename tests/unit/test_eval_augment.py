"""The five training sets: exact counts from the documented formulas, and index plans."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from gdgan.evaluation.augment import AugmentError, plan_training_set, strategy_counts


def _fewest_additions(p: int, n: int, s: Fraction) -> int:
    """Brute force: smallest k >= 0 with (p + k) / (p + n + k) >= s."""
    k = 0
    while Fraction(p + k, p + n + k) < s:
        k += 1
    return k


def _fewest_kept_drop(p: int, n: int, s: Fraction) -> int:
    """Brute force: largest n' <= n with p / (p + n') >= s."""
    m = n
    while m > 0 and Fraction(p, p + m) < s:
        m -= 1
    return m


@pytest.mark.parametrize(
    ("p", "n", "share"),
    [(50, 950, 0.14), (7, 93, 0.14), (10, 10, 0.14), (1, 999, 0.5), (123, 4567, 0.2), (3, 0, 0.14)],
)
def test_counts_match_brute_force(p: int, n: int, share: float) -> None:
    s = Fraction(share).limit_denominator(10**6)
    none = strategy_counts("none", p, n, share)
    assert (none.total, none.positives) == (p + n, p)
    under = strategy_counts("undersample", p, n, share)
    assert under.negatives_kept == _fewest_kept_drop(p, n, s)
    assert under.positives == p
    k = _fewest_additions(p, n, s)
    for strat in ("oversample", "acgan", "gdgan"):
        c = strategy_counts(strat, p, n, share)
        assert c.positives == p + k and c.total == p + n + k
        assert c.negatives_kept == n
    assert strategy_counts("oversample", p, n, share).positives_added_real == k
    assert strategy_counts("gdgan", p, n, share).positives_added_synthetic == k


def test_worked_example() -> None:
    # 50 positives, 950 negatives, s = 0.14 = 7/50:
    # oversample: k = ceil(7/50 * 950 / (43/50) - 50) = ceil(154.65... - 50) = 105
    c = strategy_counts("oversample", 50, 950, 0.14)
    assert (c.total, c.positives) == (1105, 155)
    # undersample: N' = floor(50 * 43/7) = floor(307.14...) = 307
    u = strategy_counts("undersample", 50, 950, 0.14)
    assert (u.total, u.positives) == (357, 50)


def test_paper_share() -> None:
    # The paper's augmented row has 86,613 negatives; exact rounding gives 14,100 positives.
    c = strategy_counts("gdgan", 2_000, 86_613, 0.14)
    assert c.positives == 14_100 and c.total == 100_713
    assert c.positives / c.total >= 0.14 > (c.positives - 1) / (c.total - 1)


def test_share_already_reached_changes_nothing() -> None:
    assert strategy_counts("oversample", 30, 70, 0.14).total == 100
    assert strategy_counts("undersample", 30, 70, 0.14).negatives_kept == 70


def test_errors_name_the_problem() -> None:
    with pytest.raises(AugmentError, match="unknown strategy 'smote'"):
        strategy_counts("smote", 1, 1)
    with pytest.raises(AugmentError, match="at least one real positive"):
        strategy_counts("oversample", 0, 10)
    with pytest.raises(AugmentError, match="positive_share"):
        strategy_counts("oversample", 1, 10, 1.5)


def test_plan_uses_training_part_only_and_positive_mix() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    target = (rng.random(n) < 0.05).astype(np.uint8)
    gender = rng.integers(0, 2, n).astype(np.uint8)
    view = rng.integers(0, 2, n).astype(np.uint8)
    gender[target == 1] = 1  # all positives female: the synthetic mix must follow
    train = np.sort(rng.choice(n, 1400, replace=False))
    for strat in ("none", "undersample", "oversample", "acgan", "gdgan"):
        tp = plan_training_set(strat, train, target, gender, view, 0.14, seed=1)
        assert np.isin(tp.real_indices, train).all()
        n_real_pos = int(target[tp.real_indices].sum())
        assert n_real_pos + len(tp.synthetic_gender) == tp.counts.positives
        assert len(tp.real_indices) + len(tp.synthetic_gender) == tp.counts.total
        if strat in ("acgan", "gdgan"):
            assert len(tp.synthetic_gender) > 0 and (tp.synthetic_gender == 1).all()
    a = plan_training_set("oversample", train, target, gender, view, 0.14, seed=3)
    b = plan_training_set("oversample", train, target, gender, view, 0.14, seed=3)
    assert np.array_equal(a.real_indices, b.real_indices)
