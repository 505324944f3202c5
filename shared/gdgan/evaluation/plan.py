"""The evaluation plan: everything that defines one run of the paper's experiment.

A plan is JSON-serialisable so the job system can hand it to workers that fan the
(strategy × repeat) classifier runs out; every worker rebuilds the same splits and training
sets from it, because all randomness is derived from ``seed``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gdgan.evaluation.presets import EvalPreset, get_eval_preset
from gdgan.labels import LabelSchema, finding_index

Strategy = Literal["none", "undersample", "oversample", "acgan", "gdgan"]
STRATEGIES: tuple[str, ...] = ("none", "undersample", "oversample", "acgan", "gdgan")
GAN_STRATEGIES: tuple[str, ...] = ("acgan", "gdgan")


class EvaluationPlan(BaseModel):
    """One evaluation. ``gdgan_model``/``acgan_model`` None = train one per split (reproduce)."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str
    finding: str = "Cardiomegaly"
    repeats: int = Field(default=3, ge=1, le=20)
    preset: str = "demo"
    preset_overrides: dict[str, Any] = Field(default_factory=dict)
    strategies: list[Strategy] = Field(default_factory=lambda: list(STRATEGIES))
    gdgan_model: str | None = None
    acgan_model: str | None = None
    positive_share: float | None = Field(default=None, gt=0, lt=1)
    seed: int = 0
    split_base_seed: int = 0
    device: str | None = None

    findings: list[str] | None = Field(
        default=None, description="The dataset's findings (its label schema); None = NIH's 14."
    )

    @model_validator(mode="after")
    def _known_finding(self) -> EvaluationPlan:
        """Any finding of the dataset can be the target; an unknown one is named (LabelError)."""
        if self.findings is None:
            finding_index(self.finding)
        else:
            LabelSchema(general=(), findings=tuple(self.findings)).finding_index(self.finding)
        return self

    @field_validator("strategies")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("strategies must not be empty")
        return [s for s in STRATEGIES if s in v]

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        get_eval_preset(v)
        return v

    def eval_preset(self) -> EvalPreset:
        return get_eval_preset(self.preset, self.preset_overrides)

    @property
    def share(self) -> float:
        return self.positive_share if self.positive_share is not None else self.eval_preset().positive_share

    def split_seed(self, repeat: int) -> int:
        if not 0 <= repeat < self.repeats:
            raise ValueError(f"repeat {repeat} out of range 0..{self.repeats - 1}")
        return self.split_base_seed + repeat

    def seed_for(self, *parts: object) -> int:
        """A stable 32-bit seed for a named sub-task (e.g. ("classifier", "gdgan", 1))."""
        import hashlib

        key = "/".join(str(p) for p in (self.seed, *parts)).encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")

    def needs_gans(self) -> bool:
        return any(s in GAN_STRATEGIES for s in self.strategies)
