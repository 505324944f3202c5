"""Evaluation plans and presets: validation with named errors, stable seeds."""

from __future__ import annotations

import pytest
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.evaluation.presets import PRESETS, EvalPresetError, get_eval_preset
from pydantic import ValidationError


def test_plan_defaults_and_json_roundtrip() -> None:
    p = EvaluationPlan(dataset_id="dataset-x")
    assert p.finding == "Cardiomegaly" and p.repeats == 3 and p.share == 0.14
    assert p.strategies == ["none", "undersample", "oversample", "acgan", "gdgan"]
    q = EvaluationPlan.model_validate_json(p.model_dump_json())
    assert q == p and q.seed_for("a", 1) == p.seed_for("a", 1) != p.seed_for("a", 2)


def test_plan_errors_name_the_field() -> None:
    with pytest.raises(ValidationError, match="unknown finding 'Cardio'"):
        EvaluationPlan(dataset_id="d", finding="Cardio")
    with pytest.raises(ValidationError, match="strategies"):
        EvaluationPlan(dataset_id="d", strategies=["smote"])
    with pytest.raises(ValidationError, match="unknown evaluation preset 'huge'"):
        EvaluationPlan(dataset_id="d", preset="huge")


def test_presets() -> None:
    assert set(PRESETS) == {"tiny", "demo", "paper"}
    paper = get_eval_preset("paper")
    assert paper.classifier.kind == "vgg19" and paper.is_images == 50_000 and paper.is_splits == 10
    assert paper.repeats == 3 and paper.positive_share == 0.14
    p = get_eval_preset("demo", {"classifier": {"epochs": 2}, "repeats": 2})
    assert p.classifier.epochs == 2 and p.repeats == 2
    with pytest.raises(EvalPresetError, match="'nope'"):
        get_eval_preset("demo", {"nope": 1})
    with pytest.raises(EvalPresetError, match=r"classifier\.'depth'"):
        get_eval_preset("demo", {"classifier": {"depth": 1}})
