"""Request validation (what becomes a 422 naming the field); the token checks are in test_auth.py."""

from __future__ import annotations

import pytest
from gdgan.schemas import EvaluateRequest, GenerateRequest, PhantomDatasetRequest, TrainRequest
from gdgan.settings import get_settings
from pydantic import ValidationError


def _locs(exc: ValidationError) -> set[str]:
    return {str(p) for e in exc.errors() for p in e["loc"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": 10_000}, "n"),
        ({"finding": "Heart|Lung"}, "finding"),  # names come from the model; '|' never is one
        ({"finding": ""}, "finding"),
        ({"gender": "m"}, "gender"),
        ({"view": "LAT"}, "view"),
        ({"stage": 0}, "stage"),
        ({"format": "bmp"}, "format"),
        ({"seed": -1}, "seed"),
        ({"model": "../x"}, "model"),
        ({"finding": ["Mass", "Mass"]}, "finding"),
        ({"extra": 1}, "extra"),
    ],
)
def test_generate_request_rejects(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        GenerateRequest.model_validate(body)
    assert field in _locs(e.value)


def test_generate_request_cap_follows_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDGAN_GENERATE_MAX_N", "8")
    get_settings.cache_clear()
    assert GenerateRequest(n=8).n == 8
    with pytest.raises(ValidationError, match="at most 8"):
        GenerateRequest(n=9)


def test_generate_request_normalises_no_finding() -> None:
    assert GenerateRequest(finding="No Finding").finding is None
    assert GenerateRequest(finding=[]).finding is None
    assert GenerateRequest(finding=["Mass", "Edema"]).finding == ["Mass", "Edema"]
    assert GenerateRequest(model="gdgan-20260101-abc").model == "gdgan-20260101-abc"


def test_job_requests() -> None:
    with pytest.raises(ValidationError) as e:
        TrainRequest(dataset_id="Bad/Id")
    assert "dataset_id" in _locs(e.value)
    with pytest.raises(ValidationError) as e:
        EvaluateRequest(dataset_id="dataset-x", strategies=["none", "none"])
    assert "strategies" in _locs(e.value)
    with pytest.raises(ValidationError):
        PhantomDatasetRequest(source="phantom", size=48)
