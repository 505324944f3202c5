"""GDGAN networks (Koga et al., arXiv 1812.01690): stage 1 ``G1``/``D1`` and stage 2 ``G2``/``D2``.

Read top to bottom; tensor shapes are in the comments (B = batch, S = image size, one channel).

- ``Generator`` (G1, and the ACGAN generator): ``(z, y) -> x``. ``z ~ U[0,1)^nz`` (as the
  authors), ``y`` a multi-hot label vector concatenated to ``z``; a linear layer to a 4×4 map,
  then transposed convolutions doubling the resolution up to S, ``tanh`` output in [-1, 1].
- ``Critic`` (D1, D2, the ACGAN critic): strided convolutions down to 4×4, then two heads:
  the WGAN score (a plain linear output — **no sigmoid**, WGAN-GP needs an unbounded critic)
  and label logits (for BCE-with-logits). Normalisation is per-sample (``GroupNorm(1, C)`` =
  layer norm), **never batch-norm**: the gradient penalty is defined per sample and batch-norm
  would couple the samples of a batch (Gulrajani et al. 2017, §4).
- ``Refiner`` (G2): an encoder–decoder (U-Net) with skip connections, conditioned on the 14
  findings (as constant maps at the input and at the bottleneck). It predicts a residual in
  logit space: ``x2 = tanh(atanh(x1) + delta)``, and the last layer starts at zero, so stage 2
  begins as the identity on stage-1 images and learns only what the findings change.

Generators use ``GroupNorm`` rather than batch-norm so a sample does not depend on what else
is in its batch: the generator service batches unrelated requests together and must give each
the image its seed determines — exactly when the request runs alone, within 1 grey level when
batched (floating-point kernels vary with the batch size; :mod:`gdgan.training.sampling`).

Mapping to uint8 (everywhere, see :func:`to_uint8`): ``round((x + 1) * 127.5)`` clamped to
[0, 255]; the inverse for training data is ``x = u / 127.5 - 1``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from gdgan.labels import N_FINDINGS, N_GENERAL

SUPPORTED_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class GanConfig:
    """Network sizes shared by both stages (and the ACGAN baseline, for a fair comparison)."""

    size: int = 64  # image side S (32, 64, 128, 256)
    nz: int = 128  # latent dimension; z ~ U[0, 1)^nz
    ngf: int = 64  # generator width at the highest resolution
    ndf: int = 64  # critic width at the highest resolution
    max_mult: int = 8  # widths are ngf·2^k capped at ngf·max_mult
    # "input": labels concatenated to z only (the paper's generator); "norm": also a label-
    # conditioned scale and shift after every generator norm (conditional GroupNorm, as in
    # BigGAN), so the labels reach every resolution — the modern mode's stronger block
    cond: str = "input"
    # critic options of the modern mode (both off = the paper's critic, same weight keys):
    # minibatch standard deviation (ProGAN/StyleGAN) over groups of this many samples, one extra
    # feature map at 4×4, so the critic can see a batch that lacks variety (0 = off)
    mbstd: int = 0
    # projection discriminator (Miyato & Koyama 2018): score += <embed(y), features>, so the
    # realism score itself depends on the requested labels, beside the auxiliary heads
    projection: bool = False

    def __post_init__(self) -> None:
        if self.size not in SUPPORTED_SIZES:
            raise ValueError(f"size must be one of {SUPPORTED_SIZES}, got {self.size}")
        if self.cond not in ("input", "norm"):
            raise ValueError(f"cond must be 'input' or 'norm', got {self.cond!r}")
        if self.mbstd < 0:
            raise ValueError(f"mbstd must be >= 0, got {self.mbstd}")

    @property
    def levels(self) -> int:
        """Number of ×2 resolution changes between 4×4 and S×S."""
        return int(math.log2(self.size)) - 2

    def to_dict(self) -> dict[str, int | str | bool]:
        return asdict(self)


def _groups(channels: int) -> int:
    """GroupNorm groups: up to 32, always dividing ``channels``."""
    return math.gcd(32, channels)


def _width(base: int, k: int, max_mult: int) -> int:
    return base * min(2**k, max_mult)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8 in [0, 255]: round((x + 1) · 127.5), clamped."""
    return ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def from_uint8(u: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [-1, 1] (the inverse of :func:`to_uint8` up to rounding)."""
    return u.float() / 127.5 - 1.0


class CondShift(nn.Module):
    """h -> h·(1 + γ(y)) + β(y) per channel; starts as the identity (zero-initialised)."""

    def __init__(self, n_labels: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(n_labels, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(y)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return h * (1.0 + gamma) + beta


class ImageConvTranspose2d(nn.ConvTranspose2d):
    """The generator's last layer (to one image channel), same weights and math as its parent.

    On the CPU, oneDNN's transposed convolution to a single output channel is ~4x slower than
    PyTorch's own im2col kernel (``slow_conv_transpose2d``: 1.0 vs 0.27 ms forward at the demo's
    32 px, batch 32; ``benchmarks/bench_train_step.py``), so that kernel runs there; elsewhere
    (CUDA, autocast) the parent's. Both compute the same sums; they differ by rounding only.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.device.type != "cpu" or output_size is not None or torch.is_autocast_enabled("cpu"):
            return super().forward(x, output_size)
        return torch.ops.aten.slow_conv_transpose2d(
            x,
            self.weight,
            list(self.kernel_size),
            self.bias,
            list(self.stride),
            list(self.padding),
            list(self.output_padding),
            list(self.dilation),
        )


class Generator(nn.Module):
    """G1 (and the ACGAN generator): (z (B, nz), y (B, n_labels)) -> x (B, 1, S, S) in [-1, 1]."""

    def __init__(self, cfg: GanConfig, n_labels: int) -> None:
        super().__init__()
        self.cfg, self.n_labels = cfg, n_labels
        L = cfg.levels
        widths = [_width(cfg.ngf, L - 1 - i, cfg.max_mult) for i in range(L)]  # 4×4 ... S/2×S/2
        self.fc = nn.Linear(cfg.nz + n_labels, widths[0] * 16)
        self.norm0 = nn.GroupNorm(_groups(widths[0]), widths[0])
        blocks: list[nn.Module] = []
        for cin, cout in itertools.pairwise(widths):
            blocks += [
                nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                nn.GroupNorm(_groups(cout), cout),
                nn.ReLU(inplace=True),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.out = ImageConvTranspose2d(widths[-1], 1, 4, 2, 1)
        # conditional norms (cond="norm" only, so paper-mode weights keep their keys)
        self.cond = nn.ModuleList(CondShift(n_labels, w) for w in widths) if cfg.cond == "norm" else None

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # z ~ U[0,1) (the authors' latent) is centred to U[-1,1) here: an all-positive input
        # would put a large constant into every unit and drown the part that varies with z.
        h = self.fc(torch.cat([2.0 * z - 1.0, y], dim=1))  # (B, C0·16)
        h = h.view(h.shape[0], -1, 4, 4)  # (B, C0, 4, 4)
        h = self.norm0(h)
        if self.cond is None:
            h = self.blocks(torch.relu(h))  # (B, ngf, S/2, S/2)
        else:
            h = torch.relu(self.cond[0](h, y))
            for k in range(0, len(self.blocks), 3):  # (deconv, norm, relu) triples
                up, norm, act = self.blocks[k : k + 3]
                h = act(self.cond[k // 3 + 1](norm(up(h)), y))
        return torch.tanh(self.out(h))  # (B, 1, S, S)


def mbstd_group_size(batch: int, group: int) -> int:
    """The group size minibatch stddev uses for a batch: the largest divisor of it <= ``group``."""
    return max(d for d in range(1, min(group, batch) + 1) if batch % d == 0)


def minibatch_stddev(h: torch.Tensor, group: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 1, H, W): one extra map holding, for each sample, the mean over
    (C, H, W) of the standard deviation (population, over its group) of every feature.

    Groups are consecutive runs of ``g`` samples, ``g`` the largest divisor of B not above
    ``group``: a generator that draws the same image for every z gives a map of zeros, which a
    real batch never does, so the critic can punish a collapse it could not see per sample.
    """
    B, C, H, W = h.shape
    g = mbstd_group_size(B, group)
    # the population variance written out: Tensor.var over a middle dim of a tiny tensor takes
    # a slow strided Welford kernel on CPU (~1 ms per critic call at the demo's 32 px, forward
    # and backward ~4x this form; tests/unit/test_models.py checks it against NumPy)
    y = h.float().reshape(B // g, g, C * H * W)  # (groups, g, C·H·W)
    dev = y - y.mean(dim=1, keepdim=True)
    std = (dev.square().mean(dim=1) + 1e-8).sqrt()  # (groups, C·H·W)
    s = std.mean(dim=1)  # (groups,)
    s = s.repeat_interleave(g).to(h.dtype)[:, None, None, None].expand(B, 1, H, W)
    return torch.cat([h, s], dim=1)


class Critic(nn.Module):
    """D1 / D2 / ACGAN critic: (x (B, 1, S, S)[, y (B, n_classes)]) -> (score (B,), logits (B, n_classes)).

    ``y`` is used only with ``cfg.projection`` (the requested or true labels of ``x``); the
    auxiliary logits never depend on it. With ``cfg.mbstd`` the score of a sample depends on the
    other samples of its group (a critic-only coupling: generators stay per-sample).
    """

    def __init__(self, cfg: GanConfig, n_classes: int) -> None:
        super().__init__()
        self.cfg, self.n_classes = cfg, n_classes
        L = cfg.levels
        widths = [_width(cfg.ndf, i, cfg.max_mult) for i in range(L)]  # S/2 ... 4×4
        layers: list[nn.Module] = [nn.Conv2d(1, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for cin, cout in itertools.pairwise(widths):
            layers += [
                nn.Conv2d(cin, cout, 4, 2, 1),
                nn.GroupNorm(1, cout),  # layer norm over (C, H, W): per sample, GP-safe
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.trunk = nn.Sequential(*layers)
        feat = (widths[-1] + (1 if cfg.mbstd else 0)) * 16
        self.score = nn.Linear(feat, 1)  # no sigmoid: a WGAN critic is unbounded
        self.classify = nn.Linear(feat, n_classes)
        # projection (cfg.projection only, so the paper's critic keeps its weight keys)
        self.embed = nn.Linear(n_classes, feat, bias=False) if cfg.projection and n_classes else None

    def stacks_exactly(self, batch: int, parts: int) -> bool:
        """Whether scoring ``parts`` batches of ``batch`` images as one concatenated batch gives each
        image the score it gets in its own batch (up to rounding). Every layer is per sample
        except minibatch stddev, whose groups must then stay inside each part: true when the
        group size of the joint batch equals that of one part (which divides ``batch``)."""
        if not self.cfg.mbstd:
            return True
        return mbstd_group_size(batch * parts, self.cfg.mbstd) == mbstd_group_size(batch, self.cfg.mbstd)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)  # (B, C_last, 4, 4)
        if self.cfg.mbstd:
            h = minibatch_stddev(h, self.cfg.mbstd)  # (B, C_last + 1, 4, 4)
        h = h.flatten(1)  # (B, feat)
        score = self.score(h).squeeze(1)  # (B,)
        if self.embed is not None:
            if y is None:
                raise ValueError("a projection critic needs the labels y of its images")
            score = score + (self.embed(y.to(h.dtype)) * h).sum(1)  # + <embed(y), h>
        return score, self.classify(h)  # (B,), (B, n_classes)


class Refiner(nn.Module):
    """G2: (x1 (B, 1, S, S) in [-1, 1], y_detail (B, 14)) -> x2 (B, 1, S, S) in [-1, 1]."""

    def __init__(self, cfg: GanConfig, n_labels: int = N_FINDINGS, depth: int = 3) -> None:
        super().__init__()
        self.cfg, self.n_labels = cfg, n_labels
        depth = min(depth, cfg.levels)
        base = max(8, cfg.ngf // 2)  # half width: a refiner works at full resolution, G1 does not
        w = [_width(base, i, cfg.max_mult) for i in range(depth + 1)]
        self.inp = nn.Sequential(nn.Conv2d(1 + n_labels, w[0], 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(w[i], w[i + 1], 4, 2, 1, bias=False),
                nn.GroupNorm(_groups(w[i + 1]), w[i + 1]),
                nn.LeakyReLU(0.2, inplace=True),
            )
            for i in range(depth)
        )
        self.mid = nn.Sequential(
            nn.Conv2d(w[depth] + n_labels, w[depth], 3, 1, 1, bias=False),
            nn.GroupNorm(_groups(w[depth]), w[depth]),
            nn.ReLU(inplace=True),
        )
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(w[i + 1] * (1 if i == depth - 1 else 2), w[i], 4, 2, 1, bias=False),
                nn.GroupNorm(_groups(w[i]), w[i]),
                nn.ReLU(inplace=True),
            )
            for i in reversed(range(depth))
        )
        self.out = nn.Conv2d(w[0] * 2, 1, 3, 1, 1)
        nn.init.zeros_(self.out.weight)  # start as the identity x2 = x1
        nn.init.zeros_(self.out.bias)

    def forward(self, x1: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        B, _, S, _ = x1.shape
        ymap = y[:, :, None, None]  # (B, 14, 1, 1)
        h = self.inp(torch.cat([x1, ymap.expand(B, -1, S, S)], dim=1))  # (B, ngf, S, S)
        skips = [h]
        for down in self.down:
            h = down(h)  # (B, w[i+1], S/2^(i+1), ...)
            skips.append(h)
        s = h.shape[-1]
        h = self.mid(torch.cat([h, ymap.expand(B, -1, s, s)], dim=1))  # (B, w[depth], s, s)
        skips.pop()  # the bottleneck itself
        for k, up in enumerate(self.up):
            if k > 0:
                h = torch.cat([h, skips.pop()], dim=1)
            h = up(h)  # doubles resolution
        h = torch.cat([h, skips.pop()], dim=1)  # (B, 2·w[0], S, S)
        if h.device.type == "cpu":
            # oneDNN's 3×3 convolution to one channel is ~2x faster on channels-last input (the
            # demo's stage-2 step: 6.2 -> 3.6 ms forward + backward); a one-channel output has
            # the same memory layout either way, and the sums are the same
            h = h.contiguous(memory_format=torch.channels_last)
        delta = self.out(h)  # (B, 1, S, S)
        return logit_residual(x1, delta)


ATANH_CLAMP = 0.999  # atanh(±0.999) ≈ ±3.8: saturated stage-1 pixels stay finite and trainable


def logit_residual(x1: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``tanh(atanh(x1) + delta)`` in float32 with autocast off, whatever dtype comes in.

    Under bf16 autocast x1 arrives in bf16, where 0.999 rounds to 1.0: the clamp would let
    saturated pixels (±1) through to ``atanh`` = ±inf, with no gradient, and disagree with fp32
    inference. tests/unit/test_models.py checks ±1 inputs under CPU bf16 autocast.
    """
    with torch.autocast(device_type=x1.device.type, enabled=False):
        base = torch.atanh(x1.float().clamp(-ATANH_CLAMP, ATANH_CLAMP))
        return torch.tanh(base + delta.float())


# --- builders: the two stages ------------------------------------------------------------------
def build_stage1(cfg: GanConfig, n_general: int = N_GENERAL) -> tuple[Generator, Critic]:
    """G1(z, y_general) and D1(x) -> (score, general logits); sized by the data's label schema
    (``n_general`` = 0: an unconditional stage 1 for data without sex or view)."""
    return Generator(cfg, n_general), Critic(cfg, n_general)


def build_stage2(cfg: GanConfig, n_findings: int = N_FINDINGS) -> tuple[Refiner, Critic]:
    """G2(x1, y_detail) and D2(x) -> (score, detail logits); ``n_findings`` from the schema."""
    return Refiner(cfg, n_findings), Critic(cfg, n_findings)
