"""Training presets as data: ``tiny`` (tests), ``demo`` (2-core CPU), ``paper`` (GPU).

``paper`` and ``tiny`` play the paper's game (WGAN-GP + auxiliary classifiers, frozen D1, MSE);
``demo`` plays the modern one (hinge + lazy R1 + DiffAugment, conditional-norm generator,
class-balanced stage-2 batches, minibatch-stddev critics, the focus finding weighted ×5 in stage
2's detail BCE, λ_mse 0.3), which reached far better images per CPU-second
(``benchmarks/bench_recipe.py``); ``demo-paper`` is the paper's game at the old demo budget.

A preset is a dict of :class:`TrainConfig` fields; ``get_config(preset, overrides)`` applies
overrides field by field (CLI: ``--set batch_size=32``; strings are converted to the field's
type). Unknown presets and fields raise :class:`ConfigError` naming them, so a typo never trains
with a silent default.

Defaults and why:
- Adam lr 2e-4 (the paper); betas (0.5, 0.9) as in WGAN-GP (Gulrajani et al.) — a low β1
  keeps the critic responsive; n_critic 5 critic updates per generator update, λ_gp = 10.
- EMA of generator weights (decay 0.999, warm-up ``min(decay, (1+t)/(10+t))``) is what gets
  sampled: it averages out the oscillation of adversarial training.
- ``steps`` counts generator updates; ``epochs`` (if set) overrides it as passes of the critic
  over the training split: ``steps = ceil(epochs · n_train / (batch_size · n_critic))``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class ConfigError(ValueError):
    """Unknown preset or field, or a malformed value; the message names it."""


@dataclass(frozen=True)
class TrainConfig:
    # data / networks
    size: int = 64  # image side; the dataset is resized once in memory if it differs
    nz: int = 128
    ngf: int = 64
    ndf: int = 64
    max_mult: int = 8
    g_cond: str = "input"  # generator conditioning: "input" (the paper's) | "norm" (conditional norms)
    # critic options (modern mode; off = the paper's critic): minibatch-stddev group size
    # (0 = off) and a projection term <embed(y), features> in the critic's score
    mbstd: int = 0
    projection: bool = False
    # schedule
    batch_size: int = 64
    steps: int = 1000  # generator updates per stage (see `epochs`)
    epochs: float | None = None  # passes of the critic over the training split; overrides steps
    stage2_steps: int | None = None  # stage 2's own length (its U-Net step costs more); None = as stage 1
    n_critic: int = 5
    # optimiser
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    # losses (λ's; all auxiliary weights 1 as in the authors' definitions)
    gp_lambda: float = 10.0
    aux_real: float = 1.0
    aux_fake: float = 1.0
    lambda_general: float = 1.0
    lambda_mse: float = 1.0
    focus_weight: float = 1.0  # stage 2: weight of focus_finding's column in the detail BCE
    # the adversarial game (docs/notes/training.md, "Modes"): "wgan-gp" is the paper's; the
    # modern mode is "hinge" or "ns" with lazy R1 (r1_gamma every r1_every-th critic step)
    loss: str = "wgan-gp"
    r1_gamma: float = 0.0
    r1_every: int = 4
    diffaug: str = ""  # DiffAugment policy, e.g. "color,translation,cutout"; "" = off
    # class-balanced batches for the finding-conditioned phases (stage 2, ACGAN): this share of
    # each batch comes from the training rows with ``focus_finding`` ("" = plain uniform rows)
    focus_finding: str = ""
    focus_share: float = 0.0
    # sampling weights
    ema_decay: float = 0.999
    # bookkeeping
    seed: int = 0
    checkpoint_every: int = 500  # steps between checkpoints (and at cancellation / the end)
    progress_interval_s: float = 0.5  # minimum seconds between progress callbacks
    grid_per_group: int = 4  # samples per label group in samples.png
    grid_finding: str = "Cardiomegaly"  # the finding shown on/off in samples.png
    # quality curve (gdgan.training.curves): the harness on the EMA weights every N steps
    quality_every: int = 0  # 0 = off
    quality_n: int = 200  # images per set at each point
    quality_judge: str = "demo"  # judge preset (gdgan.evaluation.judge.JUDGE_PRESETS)
    # CUDA only (ignored on CPU, where everything is fp32 and deterministic)
    amp: bool = True  # bf16 autocast; the gradient penalty always runs in fp32
    channels_last: bool = True
    compile: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into manifests

    def __post_init__(self) -> None:
        # the dataset's list, not the model module's: validating a preset (the gateway does, for
        # every training request) must not import torch (~600 MB)
        from gdgan.data.dataset import SUPPORTED_SIZES

        if self.size not in SUPPORTED_SIZES:
            raise ConfigError(f"size: must be one of {SUPPORTED_SIZES}, got {self.size}")
        for name in ("nz", "ngf", "ndf", "max_mult", "batch_size", "steps", "n_critic", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.stage2_steps is not None and self.stage2_steps < 1:
            raise ConfigError(f"stage2_steps: must be >= 1, got {self.stage2_steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs: must be > 0, got {self.epochs}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay: must be in [0, 1), got {self.ema_decay}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas: two numbers in [0, 1), got {self.betas}")
        from gdgan.labels import FINDINGS

        if self.g_cond not in ("input", "norm"):
            raise ConfigError(f"g_cond: must be 'input' or 'norm', got {self.g_cond!r}")
        if self.focus_finding and self.focus_finding not in FINDINGS:
            raise ConfigError(f"focus_finding: unknown finding {self.focus_finding!r}")
        if not 0.0 <= self.focus_share < 1.0:
            raise ConfigError(f"focus_share: must be in [0, 1), got {self.focus_share}")
        if self.grid_finding not in FINDINGS:
            raise ConfigError(f"grid_finding: unknown finding {self.grid_finding!r}")
        if self.quality_every < 0 or self.quality_n < 8:
            raise ConfigError(
                f"quality_every/quality_n: need >= 0 and >= 8, got {self.quality_every}, {self.quality_n}"
            )
        if self.mbstd < 0:
            raise ConfigError(f"mbstd: must be >= 0 (0 = off), got {self.mbstd}")
        if self.focus_weight <= 0:
            raise ConfigError(f"focus_weight: must be > 0, got {self.focus_weight}")
        if self.lr <= 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        from gdgan.training.options import ADV_LOSSES, parse_policy

        if self.loss not in ADV_LOSSES:
            raise ConfigError(f"loss: must be one of {', '.join(ADV_LOSSES)}, got {self.loss!r}")
        if self.r1_gamma < 0 or self.r1_every < 1:
            raise ConfigError(
                f"r1_gamma must be >= 0 and r1_every >= 1, got {self.r1_gamma}, {self.r1_every}"
            )
        try:
            parse_policy(self.diffaug)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def total_steps(self, n_train: int, phase: str = "stage1") -> int:
        if phase == "stage2" and self.stage2_steps is not None:
            return self.stage2_steps
        if self.epochs is None:
            return self.steps
        return max(1, math.ceil(self.epochs * n_train / (self.batch_size * self.n_critic)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown training config field(s): {', '.join(unknown)}")
        return cls(**d)


PRESETS: dict[str, dict[str, Any]] = {
    # Unit/integration tests: seconds on one CPU core.
    "tiny": dict(
        size=32,
        ngf=16,
        ndf=16,
        batch_size=16,
        steps=30,
        n_critic=2,
        checkpoint_every=10,
        ema_decay=0.9,
        grid_per_group=2,
    ),
    # 2-core CPU: the modern mode at 32 px, chosen on quality per CPU-second
    # (benchmarks/bench_recipe.py; figures and reasons in docs/notes/training.md, "Modes").
    "demo": dict(
        size=32,
        ngf=16,
        ndf=16,
        batch_size=32,
        steps=3000,
        stage2_steps=1200,
        n_critic=1,
        lr=5e-4,
        betas=(0.0, 0.99),
        loss="hinge",
        r1_gamma=1.0,
        r1_every=4,
        diffaug="translation",  # colour + cutout collapsed the samples at this budget (recall 0.10 vs 0.68)
        g_cond="norm",
        focus_finding="Cardiomegaly",
        focus_share=0.25,
        # third wave (docs/notes/training.md, "Critic options"): minibatch stddev in both critics
        # (stage-1 recall 0.19 -> 0.34 at the same budget), the finding's BCE column ×5 and a
        # weaker pull to the stage-1 image (Cardiomegaly AUC 0.87 -> 0.95 on the same G1)
        mbstd=4,
        focus_weight=5.0,
        lambda_mse=0.3,
        checkpoint_every=500,
        ema_decay=0.995,
    ),
    # The previous demo preset: the paper's game (WGAN-GP, n_critic 2) at 64 px, for comparison.
    "demo-paper": dict(
        size=64, ngf=16, ndf=16, batch_size=32, steps=300, n_critic=2, checkpoint_every=100, ema_decay=0.99
    ),
    # The authors' setting on a GPU: 64 px, batch 64, 20 + 20 epochs over the training split.
    "paper": dict(
        size=64, ngf=64, ndf=64, batch_size=64, epochs=20.0, n_critic=5, checkpoint_every=500, ema_decay=0.999
    ),
}


def _hint(tp: Any) -> Any:
    """Unwrap ``X | None`` to ``X``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Convert a CLI string (or JSON value) to the field's type; ConfigError names the field."""
    base = _hint(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if base is not tp:
            return None
        raise ConfigError(f"{name}: a value is required")
    try:
        if base is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        if typing.get_origin(base) is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(float(v) for v in items)
        if typing.get_origin(base) is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot use {value!r} as {getattr(base, '__name__', base)}") from None
    return value


def get_config(preset: str = "demo", overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The preset's config with ``overrides`` applied field by field."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    hints = typing.get_type_hints(TrainConfig)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = dict(PRESETS[preset])
    for key, val in (overrides or {}).items():
        if key not in names:
            raise ConfigError(f"unknown training config field {key!r}; known: {', '.join(sorted(names))}")
        values[key] = _coerce(key, val, hints[key])
    return TrainConfig(**values)


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """CLI ``key=value`` strings -> dict (values stay strings; get_config converts them)."""
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise ConfigError(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out
