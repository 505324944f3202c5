"""The NIH ChestX-ray14 label schema: general labels (gender, view) and the 14 detailed findings.

Vectors are multi-hot float32 in a fixed column order so that every model, dataset and report
agrees on what column 1 of a detail vector means (Cardiomegaly).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

GENDERS: tuple[str, ...] = ("M", "F")
VIEWS: tuple[str, ...] = ("PA", "AP")

# General label vector: [is_female, is_AP]. Two binary columns (the authors' multi-hot form);
# a single bit per attribute keeps D1's classifier a plain multi-label BCE head.
GENERAL_COLUMNS: tuple[str, ...] = ("gender=F", "view=AP")
N_GENERAL = len(GENERAL_COLUMNS)

FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)
N_FINDINGS = len(FINDINGS)
NO_FINDING = "No Finding"
FINDING_INDEX: dict[str, int] = {name: i for i, name in enumerate(FINDINGS)}

# NIH ChestX-ray14 facts (112,120 images): counts per finding, used by the phantom's defaults.
NIH_TOTAL_IMAGES = 112_120
NIH_FINDING_COUNTS: dict[str, int] = {
    "Infiltration": 19_894,
    "Effusion": 13_317,
    "Atelectasis": 11_559,
    "Nodule": 6_331,
    "Mass": 5_782,
    "Pneumothorax": 5_302,
    "Consolidation": 4_667,
    "Pleural_Thickening": 3_385,
    "Cardiomegaly": 2_776,
    "Emphysema": 2_516,
    "Edema": 2_303,
    "Fibrosis": 1_686,
    "Pneumonia": 1_431,
    "Hernia": 227,
}
# Cardiomegaly by (gender, view): (positives, images) in NIH ChestX-ray14.
NIH_CARDIOMEGALY_BY_GROUP: dict[tuple[str, str], tuple[int, int]] = {
    ("F", "AP"): (569, 18_613),
    ("F", "PA"): (900, 30_167),
    ("M", "AP"): (644, 26_197),
    ("M", "PA"): (663, 37_143),
}


class LabelError(ValueError):
    """An unknown label name or a malformed label value."""


def finding_index(name: str) -> int:
    """Column of a finding in the detail vector; a clear error for unknown names."""
    try:
        return FINDING_INDEX[name]
    except KeyError:
        raise LabelError(
            f"unknown finding {name!r}; known findings: {', '.join(FINDINGS)} (or {NO_FINDING!r})"
        ) from None


def check_gender(value: str) -> str:
    if value not in GENDERS:
        raise LabelError(f"unknown gender {value!r}; expected one of {', '.join(GENDERS)}")
    return value


def check_view(value: str) -> str:
    if value not in VIEWS:
        raise LabelError(f"unknown view position {value!r}; expected one of {', '.join(VIEWS)}")
    return value


def parse_findings(text: str) -> list[str]:
    """NIH 'Finding Labels' string -> finding names ('No Finding' -> [])."""
    text = (text or "").strip()
    if not text:
        raise LabelError("empty finding label string (NIH uses 'No Finding' for none)")
    parts = [p.strip() for p in text.split("|")]
    if parts == [NO_FINDING]:
        return []
    if NO_FINDING in parts:
        raise LabelError(f"{NO_FINDING!r} combined with findings in {text!r}")
    for p in parts:
        finding_index(p)
    return parts


def encode_findings(names: str | Iterable[str]) -> np.ndarray:
    """NIH string ('Cardiomegaly|Effusion') or names -> multi-hot float32 vector of length 14."""
    if isinstance(names, str):
        names = parse_findings(names)
    vec = np.zeros(N_FINDINGS, dtype=np.float32)
    for name in names:
        vec[finding_index(name)] = 1.0
    return vec


def decode_findings(vec: Sequence[float] | np.ndarray, threshold: float = 0.5) -> str:
    """Multi-hot vector -> NIH string; an all-zero vector is 'No Finding'."""
    arr = np.asarray(vec, dtype=np.float32).reshape(-1)
    if arr.shape[0] != N_FINDINGS:
        raise LabelError(f"detail vector must have {N_FINDINGS} entries, got {arr.shape[0]}")
    names = [FINDINGS[i] for i in np.flatnonzero(arr > threshold)]
    return "|".join(names) if names else NO_FINDING


def encode_general(gender: str, view: str) -> np.ndarray:
    """(gender, view) -> [is_female, is_AP] float32."""
    check_gender(gender)
    check_view(view)
    return np.array([gender == "F", view == "AP"], dtype=np.float32)


def decode_general(vec: Sequence[float] | np.ndarray) -> tuple[str, str]:
    arr = np.asarray(vec, dtype=np.float32).reshape(-1)
    if arr.shape[0] != N_GENERAL:
        raise LabelError(f"general vector must have {N_GENERAL} entries, got {arr.shape[0]}")
    return ("F" if arr[0] > 0.5 else "M", "AP" if arr[1] > 0.5 else "PA")


def general_matrix(gender: np.ndarray, view: np.ndarray) -> np.ndarray:
    """Columns of gender codes (0=M, 1=F) and view codes (0=PA, 1=AP) -> (N, 2) float32."""
    return np.stack([np.asarray(gender) == 1, np.asarray(view) == 1], axis=1).astype(np.float32)
