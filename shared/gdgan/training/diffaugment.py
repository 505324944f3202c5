"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for one-channel images.

A critic that sees only a few hundred positives of a rare finding memorises them and stops
giving the generator a useful gradient. DiffAugment applies the same family of random,
differentiable transforms to real and fake images before *every* critic call (critic and
generator steps alike), so the critic cannot tell the two apart by the augmentation and the
generator is never rewarded for drawing augmented images.

Policies (comma-separated, applied in this order):

- ``color``: brightness ``x + (u - ½)·1`` then contrast ``(x - mean) · (½ + u) + mean`` (u ~ U[0, 1)
  per sample; saturation of the original is meaningless for one channel);
- ``translation``: integer shift by up to ⌊ratio·S + ½⌋ px on each axis (uniform), the exposed
  border filled with ``fill`` (-1 = black, the air around a chest);
- ``cutout``: one square of side ⌊S/2 + ½⌋ centred uniformly at random on a pixel, set to 0.

Every tensor passed to one :meth:`DiffAugment.__call__` gets the same per-row parameters, so a
real and a fake batch (or images and a mask) move together; different calls draw fresh ones.
All randomness comes from the caller's ``torch.Generator`` — a resumed run replays exactly.
"""

from __future__ import annotations

import torch

from gdgan.training.options import DIFFAUG_POLICIES, parse_policy

Tensor = torch.Tensor

POLICIES = DIFFAUG_POLICIES


def _uniform(n: int, gen: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.rand(n, 1, 1, 1, generator=gen, device=device)


def _shift_indices(
    n: int, size: int, max_shift: int, gen: torch.Generator | None, device: torch.device
) -> Tensor:
    """Per-row integer shifts, uniform on {-max_shift, ..., max_shift}: (n,)."""
    return torch.randint(-max_shift, max_shift + 1, (n,), generator=gen, device=device)


class DiffAugment:
    """Callable ``aug(*xs, generator=g) -> tuple`` applying one random draw to every tensor."""

    def __init__(
        self,
        policy: str = "color,translation,cutout",
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
        fill: float = -1.0,
    ) -> None:
        self.policy = parse_policy(policy)
        self.translation_ratio, self.cutout_ratio, self.fill = translation_ratio, cutout_ratio, fill

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, *xs: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        if not self.policy or not xs:
            return xs
        n, _, s, _ = xs[0].shape
        dev = xs[0].device
        for x in xs:
            if x.shape[0] != n or x.shape[-1] != s:
                raise ValueError(f"DiffAugment: all tensors need the same batch and size, got {x.shape}")
        out = list(xs)
        for p in self.policy:
            if p == "color":
                b = _uniform(n, generator, dev) - 0.5
                c = _uniform(n, generator, dev) + 0.5
                out = [_contrast(x + b.to(x.dtype), c.to(x.dtype)) for x in out]
            elif p == "translation":
                r = int(self.translation_ratio * s + 0.5)
                dy = _shift_indices(n, s, r, generator, dev)
                dx = _shift_indices(n, s, r, generator, dev)
                out = [translate(x, dy, dx, self.fill, r) for x in out]
            elif p == "cutout":
                side = int(self.cutout_ratio * s + 0.5)
                cy = torch.randint(0, s, (n,), generator=generator, device=dev)
                cx = torch.randint(0, s, (n,), generator=generator, device=dev)
                mask = cutout_mask(n, s, cy, cx, side, dev)
                out = [x * mask.to(x.dtype) for x in out]
        return tuple(out)


def _contrast(x: Tensor, c: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * c + mean


def translate(x: Tensor, dy: Tensor, dx: Tensor, fill: float = -1.0, max_shift: int | None = None) -> Tensor:
    """out[b, :, i, j] = x[b, :, i - dy[b], j - dx[b]] (``fill`` outside); differentiable in x.

    ``max_shift`` bounds |dy|, |dx| (pass it to avoid a device sync reading it from the shifts).
    """
    n, _, s, _ = x.shape
    r = int(max(dy.abs().max().item(), dx.abs().max().item())) if max_shift is None else max_shift
    if r == 0:
        return x
    ch, side = x.shape[1], s + 2 * r
    xp = torch.nn.functional.pad(x, (r, r, r, r), value=fill)  # (n, ch, side, side)
    ar = torch.arange(s, device=x.device)
    rows = ar[None, :] - dy[:, None] + r  # (n, s)
    cols = ar[None, :] - dx[:, None] + r
    # one gather over each padded image's flat pixels (its backward a scatter-add onto distinct
    # pixels, so exact): ~40 % less CPU than 3-tensor advanced indexing and its index_put
    flat = (rows[:, :, None] * side + cols[:, None, :]).view(n, 1, s * s).expand(n, ch, s * s)
    out = xp.flatten(2).gather(2, flat).view(n, ch, s, s)
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)  # keep a channels-last input's layout
    return out


def cutout_mask(n: int, s: int, cy: Tensor, cx: Tensor, side: int, device: torch.device) -> Tensor:
    """(n, 1, s, s) mask: 0 inside the square [c - side//2, c - side//2 + side) on both axes."""
    ar = torch.arange(s, device=device)
    lo_y = (cy - side // 2)[:, None]
    lo_x = (cx - side // 2)[:, None]
    in_y = (ar[None, :] >= lo_y) & (ar[None, :] < lo_y + side)  # (n, s)
    in_x = (ar[None, :] >= lo_x) & (ar[None, :] < lo_x + side)
    inside = in_y[:, :, None] & in_x[:, None, :]
    return (~inside).float()[:, None]
