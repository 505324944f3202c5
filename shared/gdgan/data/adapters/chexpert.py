"""CheXpert (Stanford): ``train.csv`` / ``valid.csv`` + JPEGs, 14 observations with 1 / 0 / -1 / blank.

- Uncertain (-1) labels follow an explicit policy recorded in the manifest (Irvin et al. 2019):
  ``ones`` (U-Ones: uncertain = positive), ``zeros`` (U-Zeros: uncertain = negative), or
  ``ignore`` (an image with an uncertain value on any kept finding is left out and counted —
  a multi-hot label has no "unknown" state a GAN could train on). Blank = not mentioned = 0.
- "No Finding" is not a finding: it is the all-zero vector, as in NIH.
- Laterals are skipped by default (``laterals="skip"``); ``"keep"`` keeps them and then the schema
  has no view label (a lateral is neither PA nor AP).
- ``valid.csv`` is the publisher's radiologist-labelled set and becomes the test part
  (``official_split`` 2), ``train.csv`` the training part (1).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np

from gdgan.data.adapters.common import (
    AdapterError,
    Record,
    Source,
    image_root,
    parse_age,
    read_csv,
    resolve_under,
    sex_code,
    view_code,
)
from gdgan.data.nih import IngestReport

CHEXPERT_OBSERVATIONS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
Uncertainty = Literal["ones", "zeros", "ignore"]
Laterals = Literal["skip", "keep"]
UNCERTAINTY: tuple[str, ...] = ("ones", "zeros", "ignore")
_VALUES = {"1": 1, "1.0": 1, "0": 0, "0.0": 0, "": 0, "-1": -1, "-1.0": -1}
_PATIENT_RE = re.compile(r"(patient\d+)")
_STUDY_RE = re.compile(r"study(\d+)")


def observations(
    row: dict[str, str], findings: tuple[str, ...], policy: str, line: int, key: str, report: IngestReport
) -> np.ndarray | None:
    """The CheXpert-style label columns of one row -> multi-hot under ``policy``; None = skip row."""
    vec = np.zeros(len(findings), np.uint8)
    uncertain = []
    for i, name in enumerate(findings):
        raw = row.get(name, "")
        v = _VALUES.get(raw.strip())
        if v is None:
            report.unknown_labels.add(f"line {line} ({key}): {name} = {raw!r} (expected 1, 0, -1 or blank)")
            return None
        if v == -1:
            uncertain.append(name)
            v = 1 if policy == "ones" else 0
        vec[i] = v
    if uncertain:
        report.notes["uncertain_values"] = report.notes.get("uncertain_values", 0) + len(uncertain)
        if policy == "ignore":
            report.excluded.add(f"line {line} ({key}): uncertain {', '.join(uncertain)}")
            return None
    return vec


def check_policy(uncertainty: str, laterals: str) -> None:
    if uncertainty not in UNCERTAINTY:
        raise AdapterError(f"uncertainty must be one of {', '.join(UNCERTAINTY)}, got {uncertainty!r}")
    if laterals not in ("skip", "keep"):
        raise AdapterError(f"laterals must be 'skip' or 'keep', got {laterals!r}")


def labelled_inputs(
    images: str | Path, uncertainty: str, laterals: str, findings: tuple[str, ...] | None
) -> tuple[Path, tuple[str, ...]]:
    """The checked opening of both CheXpert-labelled sources (CheXpert, MIMIC-CXR): the label
    policy, the image folder, and the observations asked for (default: all 14)."""
    check_policy(uncertainty, laterals)
    return image_root(images), tuple(findings) if findings else CHEXPERT_OBSERVATIONS


def policy_report(csv_path: str, root: Path, uncertainty: str, laterals: str) -> IngestReport:
    """An empty report that records the label policy, so the stored dataset says how -1 and
    lateral views were treated."""
    report = IngestReport(csv_path=csv_path, images_root=str(root), size=0)
    report.notes.update({"uncertainty": uncertainty, "laterals": laterals})
    return report


def _csv_files(csv_path: Path) -> list[tuple[Path, int]]:
    if csv_path.is_dir():
        files = [
            (csv_path / n, code)
            for n, code in (("train.csv", 1), ("valid.csv", 2))
            if (csv_path / n).is_file()
        ]
        if not files:
            raise AdapterError(f"no train.csv or valid.csv in {csv_path}")
        return files
    code = {"train.csv": 1, "valid.csv": 2}.get(csv_path.name.removesuffix(".gz"), 0)
    return [(csv_path, code)]


def _find(root: Path, rel: str) -> Path | None:
    """'CheXpert-v1.0-small/train/...' under the root, or under it without the first folder."""
    p = resolve_under(root, rel)
    if p is None and "/" in rel:
        p = resolve_under(root, rel.split("/", 1)[1])
    return p


def read_chexpert(
    csv: str | Path,
    images: str | Path,
    *,
    uncertainty: str = "ones",
    laterals: str = "skip",
    findings: tuple[str, ...] | None = None,
) -> Source:
    root, wanted = labelled_inputs(images, uncertainty, laterals, findings)
    unknown = [f for f in wanted if f not in CHEXPERT_OBSERVATIONS]
    if unknown:
        raise AdapterError(
            f"unknown CheXpert observation {unknown[0]!r}; known: {', '.join(CHEXPERT_OBSERVATIONS)}"
        )
    files = _csv_files(Path(csv))
    report = policy_report(", ".join(str(p) for p, _ in files), root, uncertainty, laterals)
    records: list[Record] = []
    for path, split in files:
        _, rows = read_csv(path, ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *wanted), "CheXpert CSV")
        for line, row in rows:
            report.rows += 1
            if not row:
                report.bad_rows.add(f"{path.name} line {line}: unreadable or wrong number of fields")
                continue
            key = row["Path"]
            lateral = row["Frontal/Lateral"].strip().lower() == "lateral"
            if lateral and laterals == "skip":
                report.excluded.add(f"{path.name} line {line}: {key} (lateral)")
                continue
            vec = observations(row, wanted, uncertainty, line, key, report)
            if vec is None:
                continue
            pm, sm = _PATIENT_RE.search(key), _STUDY_RE.search(key)
            records.append(
                Record(
                    line=line,
                    key=key,
                    path=_find(root, key),
                    patient=pm.group(1) if pm else "",
                    findings=vec,
                    gender=sex_code(row["Sex"]),
                    view=None if lateral else view_code(row["AP/PA"]),
                    age=parse_age(row["Age"]),
                    follow_up=int(sm.group(1)) - 1 if sm else 0,
                    split=split,
                )
            )
    general = ("gender",) if laterals == "keep" else ("gender", "view")
    config = {"uncertainty": uncertainty, "laterals": laterals, "csv": [p.name for p, _ in files]}
    return Source("chexpert", records, wanted, report, config, general=general)
