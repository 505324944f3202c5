"""DiffAugment against closed forms: shift and cutout statistics, consistency, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gdgan.training.diffaugment import DiffAugment, cutout_mask, parse_policy, translate


def test_policy_parsing_and_off_is_identity() -> None:
    assert parse_policy("") == () and parse_policy("none") == ()
    assert parse_policy("color, cutout") == ("color", "cutout")
    with pytest.raises(ValueError, match="flip"):
        parse_policy("translation,flip")
    x = torch.randn(3, 1, 8, 8)
    (y,) = DiffAugment("")(x, generator=torch.Generator().manual_seed(0))
    assert y is x
    assert not DiffAugment("none")


def test_shapes_and_gradients_flow() -> None:
    aug = DiffAugment("color,translation,cutout")
    x = torch.randn(4, 1, 16, 16, requires_grad=True)
    f = torch.randn(4, 1, 16, 16, requires_grad=True)
    a, b = aug(x, f, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and b.shape == f.shape
    (a.sum() + 2 * b.sum()).backward()
    assert x.grad is not None and f.grad is not None
    assert x.grad.abs().sum() > 0 and f.grad.abs().sum() > 0
    # geometric parts route gradients per pixel: a pixel cut out or shifted off gets none
    x2 = torch.randn(4, 1, 16, 16, requires_grad=True)
    (c,) = DiffAugment("translation,cutout")(x2, generator=torch.Generator().manual_seed(0))
    c.sum().backward()
    assert x2.grad is not None and set(x2.grad.unique().tolist()) <= {0.0, 1.0}
    assert (x2.grad == 0).any() and (x2.grad == 1).any()


def test_same_draw_for_every_tensor_of_a_call_fresh_draw_per_call() -> None:
    aug = DiffAugment("color,translation,cutout")
    x = torch.randn(6, 1, 16, 16)
    g = torch.Generator().manual_seed(3)
    a, b = aug(x, x.clone(), generator=g)
    assert torch.equal(a, b)  # identical inputs, identical outputs: the same parameters
    (c,) = aug(x, generator=g)
    assert not torch.equal(a, c)  # the next call draws new ones
    (d,) = aug(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, d)  # seeded: reproducible


def test_translation_is_an_exact_integer_shift_with_fill() -> None:
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    out = translate(x, torch.tensor([1, -2]), torch.tensor([0, 1]), fill=-1.0)
    expected0 = np.full((5, 5), -1.0)
    expected0[1:, :] = x[0, 0, :-1, :].numpy()  # moved down by one
    np.testing.assert_array_equal(out[0, 0].numpy(), expected0)
    expected1 = np.full((5, 5), -1.0)
    expected1[:-2, 1:] = x[1, 0, 2:, :-1].numpy()  # up by two, right by one
    np.testing.assert_array_equal(out[1, 0].numpy(), expected1)


def test_translation_shifts_are_uniform_closed_form() -> None:
    """A one-pixel image: its displacement must be uniform on {-r..r}² (mean 0, var ((2r+1)²-1)/12)."""
    n, s = 4000, 16
    x = -torch.ones(n, 1, s, s)
    x[:, 0, 8, 8] = 1.0
    aug = DiffAugment("translation")  # r = round(s/8) = 2
    (y,) = aug(x, generator=torch.Generator().manual_seed(0))
    idx = y.flatten(1).argmax(1)
    dy = (idx // s - 8).numpy()
    dx = (idx % s - 8).numpy()
    r = 2
    var = ((2 * r + 1) ** 2 - 1) / 12
    for d in (dy, dx):
        assert set(np.unique(d)) == set(range(-r, r + 1))
        assert abs(d.mean()) < 4 * np.sqrt(var / n)
        assert d.var() == pytest.approx(var, rel=0.08)
        counts = np.bincount(d + r) / n
        np.testing.assert_allclose(counts, 1 / (2 * r + 1), atol=0.03)
    assert abs(np.corrcoef(dy, dx)[0, 1]) < 0.05  # independent axes


def test_cutout_area_matches_closed_form() -> None:
    """Centre uniform over pixels, side h: E[masked area] = (E[1-D extent])² with the extent
    |[c - h//2, c - h//2 + h) ∩ [0, S)| averaged over c — computed here by enumeration."""
    s, n = 16, 3000
    side = 8
    extents = [len(set(range(c - side // 2, c - side // 2 + side)) & set(range(s))) for c in range(s)]
    expected = (np.mean(extents) / s) ** 2
    aug = DiffAugment("cutout")
    (y,) = aug(torch.ones(n, 1, s, s), generator=torch.Generator().manual_seed(1))
    frac = (y == 0).float().mean(dim=(1, 2, 3)).numpy()
    assert frac.mean() == pytest.approx(expected, rel=0.03)
    assert frac.max() == pytest.approx(side * side / s / s)  # an interior square is whole
    # each mask is one axis-aligned rectangle: zero rows × zero cols
    m = cutout_mask(1, s, torch.tensor([0]), torch.tensor([15]), side, torch.device("cpu"))[0, 0]
    assert m[:4, 11:].eq(0).all() and m.eq(0).sum() == 4 * 5


def test_color_moments_closed_form() -> None:
    """brightness b ~ U[-½, ½), contrast c ~ U[½, 3/2): mean shifts by b (var 1/12), spread by c."""
    n = 4000
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    (y,) = DiffAugment("color")(x, generator=g)
    shift = (y.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))).numpy()
    assert shift.var() == pytest.approx(1 / 12, rel=0.08) and abs(shift.mean()) < 0.02
    ratio = (y.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))).numpy()
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() < 1.5 + 1e-5
    assert ratio.mean() == pytest.approx(1.0, abs=0.02)
