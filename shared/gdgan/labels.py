"""Label schemas: NIH ChestX-ray14's (general labels gender, view; 14 findings) and any other.

The module constants are NIH's schema, the default everywhere; :class:`LabelSchema` (at the end)
describes whatever labels another dataset carries.

Vectors are multi-hot float32 in a fixed column order so that every model, dataset and report
agrees on what column 1 of a detail vector means (Cardiomegaly).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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


# --------------------------------------------------------------------------------------------
# label schema: which labels a dataset (and every model trained on it) carries
# --------------------------------------------------------------------------------------------
# The general labels GDGAN knows, in canonical column order, each a binary column whose 1-value
# is the second code (gender=F, view=AP). A dataset carries any subset (a folder of PNGs: none).
GENERAL_LABELS: dict[str, tuple[str, ...]] = {"gender": GENDERS, "view": VIEWS}
_FINDING_NAME_MAX = 64


@dataclass(frozen=True)
class LabelSchema:
    """General labels first (a subset of :data:`GENERAL_LABELS`), then detail findings, in column order.

    Why a value object rather than module constants: GDGAN's idea (general labels, then details)
    does not depend on NIH's exact lists, so the dataset says which labels it has, its manifest
    records them, the networks are sized from them and every model artifact carries them, so
    a generator validates requests against its own labels. :data:`NIH_SCHEMA` is the default
    wherever nothing is recorded, which keeps every existing artifact loading unchanged.
    """

    general: tuple[str, ...] = ("gender", "view")
    findings: tuple[str, ...] = FINDINGS

    def __post_init__(self) -> None:
        unknown = [g for g in self.general if g not in GENERAL_LABELS]
        if unknown:
            raise LabelError(f"unknown general label {unknown[0]!r}; known: {', '.join(GENERAL_LABELS)}")
        order = [g for g in GENERAL_LABELS if g in self.general]
        if list(self.general) != order:
            raise LabelError(f"general labels must be in the order {', '.join(GENERAL_LABELS)}")
        if len(set(self.findings)) != len(self.findings):
            raise LabelError("finding names must not repeat")
        for f in self.findings:
            if not f or len(f) > _FINDING_NAME_MAX or f != f.strip() or "|" in f or f == NO_FINDING:
                raise LabelError(f"bad finding name {f!r} (1-{_FINDING_NAME_MAX} characters, no '|')")

    @property
    def n_general(self) -> int:
        return len(self.general)

    @property
    def n_findings(self) -> int:
        return len(self.findings)

    @property
    def general_columns(self) -> tuple[str, ...]:
        return tuple(f"{g}={GENERAL_LABELS[g][1]}" for g in self.general)

    def has(self, general: str) -> bool:
        return general in self.general

    def finding_index(self, name: str) -> int:
        """Column of a finding; a LabelError naming it and listing this schema's findings."""
        try:
            return self.findings.index(name)
        except ValueError:
            raise LabelError(
                f"unknown finding {name!r}; this model/dataset has: {', '.join(self.findings)} "
                f"(or {NO_FINDING!r})"
            ) from None

    def check_general(self, label: str, value: str | None) -> int | None:
        """A general label's value -> its code (0/1); None stays None; absent labels are an error."""
        if value is None:
            return None
        if label not in self.general:
            have = ", ".join(self.general) or "none"
            raise LabelError(f"this model/dataset has no {label!r} label (its general labels: {have})")
        values = GENERAL_LABELS[label]
        if value not in values:
            raise LabelError(f"unknown {label} {value!r}; expected one of {', '.join(values)}")
        return values.index(value)

    def encode(self, names: Iterable[str]) -> np.ndarray:
        vec = np.zeros(self.n_findings, dtype=np.float32)
        for name in names:
            vec[self.finding_index(name)] = 1.0
        return vec

    def decode(self, vec: Sequence[float] | np.ndarray, threshold: float = 0.5) -> str:
        """Multi-hot -> 'A|B' string, 'No Finding' when none (NIH's convention, for any schema)."""
        arr = np.asarray(vec, dtype=np.float32).reshape(-1)
        if arr.shape[0] != self.n_findings:
            raise LabelError(f"detail vector must have {self.n_findings} entries, got {arr.shape[0]}")
        names = [self.findings[i] for i in np.flatnonzero(arr > threshold)]
        return "|".join(names) if names else NO_FINDING

    def groups(self) -> tuple[tuple[int, ...], ...]:
        """Every combination of general codes (NIH: (0,0) (0,1) (1,0) (1,1); none: one empty group)."""
        out: list[tuple[int, ...]] = [()]
        for _ in self.general:
            out = [(*g, c) for g in out for c in (0, 1)]
        return tuple(out)

    def group_key(self, codes: Sequence[int]) -> str:
        """'M/PA' for NIH, 'PA' with only a view, 'all' without general labels."""
        parts = [GENERAL_LABELS[g][int(c)] for g, c in zip(self.general, codes)]
        return "/".join(parts) if parts else "all"

    def to_dict(self) -> dict[str, list[str]]:
        return {"general": list(self.general), "findings": list(self.findings)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> LabelSchema:
        """A recorded schema; None (artifacts made before schemas existed) is NIH's."""
        if not d:
            return NIH_SCHEMA
        try:
            return cls(general=tuple(d["general"]), findings=tuple(d["findings"]))
        except (KeyError, TypeError) as exc:
            raise LabelError(f"malformed label schema {d!r}: {exc}") from None


NIH_SCHEMA = LabelSchema()
SCHEMA_KEY = "label_schema"  # where manifests record it (dataset and model meta)


def schema_of(meta: dict[str, Any] | None) -> LabelSchema:
    """The schema recorded in a manifest's meta (NIH's when absent)."""
    return LabelSchema.from_dict((meta or {}).get(SCHEMA_KEY))
