"""Label schemas: NIH ChestX-ray14's (general labels gender, view; 14 findings) and any other.

The module constants are NIH's schema, the default everywhere; :class:`LabelSchema` (at the end)
describes whatever labels another dataset carries.

Vectors are multi-hot float32 in a fixed column order so that every model, dataset and report
agrees on what column 1 of a detail vector means (Cardiomegaly).
"""

from __future__ import annotations

import itertools
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
    """An unknown label name or a malformed label value; ``field`` names the request field it
    concerns ("finding", "gender", "view", "age_band") when there is one, so services answer a
    422 that points at it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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
# The general labels GDGAN knows, in canonical column order. Sex and view are binary; the age band
# takes its values from the schema's band edges (GDGAN_AGE_BAND_EDGES when a dataset is ingested),
# so it has none here. A dataset carries any subset (a folder of PNGs: none).
AGE_BAND = "age_band"
GENERAL_LABELS: dict[str, tuple[str, ...]] = {"gender": GENDERS, "view": VIEWS, AGE_BAND: ()}
DEFAULT_AGE_EDGES: tuple[int, ...] = (40, 60)
AGE_MAX = 120
_FINDING_NAME_MAX = 64


def age_band_names(edges: Sequence[int]) -> tuple[str, ...]:
    """Edges (40, 60) -> ("0-39", "40-59", "60+"): band i holds ages in [edge[i-1], edge[i])."""
    lows = [0, *edges]
    names = [f"{lo}-{hi - 1}" for lo, hi in zip(lows, edges)]
    return (*names, f"{lows[-1]}+")


def check_age_edges(edges: Sequence[int]) -> tuple[int, ...]:
    """Strictly increasing whole years inside 1..120; a LabelError naming the problem otherwise."""
    try:
        out = tuple(int(e) for e in edges)
    except (TypeError, ValueError):
        raise LabelError(f"age band edges must be whole years, got {list(edges)!r}") from None
    if not out:
        raise LabelError("age bands need at least one edge (e.g. 40,60 gives 0-39, 40-59, 60+)")
    if any(not 1 <= e <= AGE_MAX for e in out) or any(b <= a for a, b in itertools.pairwise(out)):
        raise LabelError(f"age band edges must increase strictly within 1..{AGE_MAX}, got {list(out)}")
    return out


@dataclass(frozen=True)
class LabelSchema:
    """General labels first (a subset of :data:`GENERAL_LABELS`), then detail findings, in column order.

    Why a value object rather than module constants: GDGAN's idea (general labels, then details)
    does not depend on NIH's exact lists, so the dataset says which labels it has, its manifest
    records them, the networks are sized from them and every model artifact carries them, so
    a generator validates requests against its own labels. :data:`NIH_SCHEMA` is the default
    wherever nothing is recorded, which keeps every existing artifact loading unchanged.

    Encoding: a general label with values v0..v(k-1) is k-1 columns, column j = [code > j] (a
    "thermometer"). A binary label is one column (gender=F, view=AP: NIH's vector unchanged); the
    ordered age band with k bands is k-1 cumulative columns (age_band>=40-59, age_band>=60+), so
    neighbouring bands share columns and stage 1's multi-label BCE head still fits it.
    """

    general: tuple[str, ...] = ("gender", "view")
    findings: tuple[str, ...] = FINDINGS
    age_edges: tuple[int, ...] = ()  # band edges in years, only when the schema has an age band

    def __post_init__(self) -> None:
        unknown = [g for g in self.general if g not in GENERAL_LABELS]
        if unknown:
            raise LabelError(f"unknown general label {unknown[0]!r}; known: {', '.join(GENERAL_LABELS)}")
        order = [g for g in GENERAL_LABELS if g in self.general]
        if list(self.general) != order:
            raise LabelError(f"general labels must be in the order {', '.join(GENERAL_LABELS)}")
        if AGE_BAND in self.general:
            object.__setattr__(self, "age_edges", check_age_edges(self.age_edges))
        elif self.age_edges:
            raise LabelError("age band edges given but the schema has no age_band label")
        if len(set(self.findings)) != len(self.findings):
            raise LabelError("finding names must not repeat")
        for f in self.findings:
            if not f or len(f) > _FINDING_NAME_MAX or f != f.strip() or "|" in f or f == NO_FINDING:
                raise LabelError(f"bad finding name {f!r} (1-{_FINDING_NAME_MAX} characters, no '|')")

    def values(self, label: str) -> tuple[str, ...]:
        """The values a general label takes in this schema (the age band's from its edges)."""
        if label == AGE_BAND:
            return age_band_names(self.age_edges) if self.age_edges else ()
        return GENERAL_LABELS[label]

    @property
    def n_general(self) -> int:
        """Width of the general vector stage 1 is conditioned on (k-1 columns per k-valued label)."""
        return sum(len(self.values(g)) - 1 for g in self.general)

    @property
    def n_findings(self) -> int:
        return len(self.findings)

    @property
    def general_columns(self) -> tuple[str, ...]:
        out: list[str] = []
        for g in self.general:
            vals = self.values(g)
            out += [f"{g}={vals[1]}"] if len(vals) == 2 else [f"{g}>={v}" for v in vals[1:]]
        return tuple(out)

    def has(self, general: str) -> bool:
        return general in self.general

    def finding_index(self, name: str) -> int:
        """Column of a finding; a LabelError naming it and listing this schema's findings."""
        try:
            return self.findings.index(name)
        except ValueError:
            raise LabelError(
                f"unknown finding {name!r}; this model/dataset has: {', '.join(self.findings)} "
                f"(or {NO_FINDING!r})",
                field="finding",
            ) from None

    def check_general(self, label: str, value: str | None) -> int | None:
        """A general label's value -> its code; None stays None; absent labels are an error."""
        if value is None:
            return None
        if label not in self.general:
            have = ", ".join(self.general) or "none"
            raise LabelError(
                f"this model/dataset has no {label!r} label (its general labels: {have})", field=label
            )
        values = self.values(label)
        if value not in values:
            raise LabelError(
                f"unknown {label} {value!r}; this model/dataset has: {', '.join(values)}", field=label
            )
        return values.index(value)

    # -- codes (one int per general label) <-> columns (the vector stage 1 sees) ------------------
    def age_codes(self, age: np.ndarray) -> np.ndarray:
        """Ages in years -> band codes (-1 where unknown, i.e. negative or above AGE_MAX)."""
        a = np.asarray(age).astype(np.int64)
        codes = np.searchsorted(np.asarray(self.age_edges or DEFAULT_AGE_EDGES), a, side="right")
        return np.where((a < 0) | (a > AGE_MAX), -1, codes).astype(np.int64)

    def codes_of(self, labels: dict[str, np.ndarray]) -> np.ndarray:
        """(N, L) codes of the general labels from a label table's gender/view/age columns."""
        n = len(labels["gender"])
        cols = []
        for g in self.general:
            cols.append(self.age_codes(labels["age"]) if g == AGE_BAND else np.asarray(labels[g], np.int64))
        return np.stack(cols, 1) if cols else np.zeros((n, 0), np.int64)

    def columns(self, codes: np.ndarray) -> np.ndarray:
        """(N, L) codes -> (N, n_general) float32 general vectors (thermometer per label)."""
        c = np.asarray(codes, np.int64)
        c = c.reshape(len(c) if c.ndim > 1 else 1, self.n_general_labels)
        out = [
            (c[:, i : i + 1] > np.arange(len(self.values(g)) - 1)[None, :])
            for i, g in enumerate(self.general)
        ]
        return np.concatenate(out, 1).astype(np.float32) if out else np.zeros((len(c), 0), np.float32)

    def codes(self, columns: np.ndarray) -> np.ndarray:
        """(N, n_general) general vectors -> (N, L) codes (a band = how many of its columns are on)."""
        x = np.asarray(columns, np.float32)
        x = x.reshape(len(x) if x.ndim > 1 else 1, self.n_general)
        out, at = [], 0
        for g in self.general:
            w = len(self.values(g)) - 1
            out.append((x[:, at : at + w] > 0.5).sum(axis=1))
            at += w
        return np.stack(out, 1).astype(np.int64) if out else np.zeros((len(x), 0), np.int64)

    @property
    def n_general_labels(self) -> int:
        return len(self.general)

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
        for g in self.general:
            out = [(*grp, c) for grp in out for c in range(len(self.values(g)))]
        return tuple(out)

    def group_key(self, codes: Sequence[int]) -> str:
        """'M/PA' for NIH, 'PA' with only a view, 'M/PA/40-59' with an age band, 'all' without."""
        parts = [self.values(g)[int(c)] for g, c in zip(self.general, codes)]
        return "/".join(parts) if parts else "all"

    def general_values(self) -> dict[str, list[str]]:
        """Each general label's values, for clients that build their choices from the model."""
        return {g: list(self.values(g)) for g in self.general}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"general": list(self.general), "findings": list(self.findings)}
        if self.age_edges:
            d["age_edges"] = list(self.age_edges)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> LabelSchema:
        """A recorded schema; None (artifacts made before schemas existed) is NIH's."""
        if not d:
            return NIH_SCHEMA
        try:
            return cls(
                general=tuple(d["general"]),
                findings=tuple(d["findings"]),
                age_edges=tuple(d.get("age_edges") or ()),
            )
        except (KeyError, TypeError) as exc:
            raise LabelError(f"malformed label schema {d!r}: {exc}") from None


NIH_SCHEMA = LabelSchema()
SCHEMA_KEY = "label_schema"  # where manifests record it (dataset and model meta)


def schema_of(meta: dict[str, Any] | None) -> LabelSchema:
    """The schema recorded in a manifest's meta (NIH's when absent)."""
    return LabelSchema.from_dict((meta or {}).get(SCHEMA_KEY))


def general_choice(text: str | Sequence[str], *, allow_auto: bool = True) -> str | tuple[str, ...]:
    """ "auto", "none" or a comma list / sequence of general label names -> "auto" or a tuple in
    canonical order; a LabelError naming the first unknown name (CLI --general, REST 'general')."""
    if isinstance(text, str):
        t = text.strip().lower()
        if t == "auto" and allow_auto:
            return "auto"
        names = [] if t == "none" else [x.strip() for x in t.split(",") if x.strip()]
    else:
        names = list(text)
    bad = [n for n in names if n not in GENERAL_LABELS]
    if bad:
        raise LabelError(
            f"{bad[0]!r} is not a general label ({'auto, ' if allow_auto else ''}none, "
            f"{', '.join(GENERAL_LABELS)})"
        )
    return tuple(g for g in GENERAL_LABELS if g in names)
