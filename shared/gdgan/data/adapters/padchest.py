"""PadChest (BIMCV): one CSV with a label-list column, Projection, PatientSex_DICOM; 16-bit PNGs.

Labels are the data's own: every distinct entry of the ``Labels`` column (``"['cardiomegaly',
'pleural effusion']"``) becomes a finding, alphabetically, unless ``findings`` names a subset or
``min_count`` drops rare ones; ``normal`` is the all-zero vector. Rows labelled ``exclude`` (the
publisher's own "do not use") are left out and counted. Projection PA / AP / AP_horizontal is the
view; L and COSTAL are laterals (skipped, or kept with no view label in the schema). Images sit
at ``<images>/<ImageDir>/<ImageID>`` (or flat under ``<images>``); their 16-bit depth is scaled
by the bits actually used, as for NIH. Age (for an age band) = the year of ``StudyDate_DICOM``
minus ``PatientBirth`` (a year, "1930.0"), when both columns are there.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import numpy as np

from gdgan.data.adapters.chexpert import check_policy
from gdgan.data.adapters.common import (
    Record,
    Source,
    image_root,
    read_csv,
    resolve_under,
    sex_code,
    view_code,
)
from gdgan.data.nih import IngestReport

NORMAL = "normal"
EXCLUDE = "exclude"


def _labels(text: str) -> list[str] | None:
    t = text.strip()
    if not t or t.lower() == "nan":
        return None
    try:
        v = ast.literal_eval(t)  # literals only: never code
    except (ValueError, SyntaxError):
        return None
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        return None
    names = [x.strip() for x in v if x.strip()]
    return names or None


def read_padchest(
    csv: str | Path,
    images: str | Path,
    *,
    laterals: str = "skip",
    findings: tuple[str, ...] | None = None,
    min_count: int = 1,
) -> Source:
    check_policy("ones", laterals)
    root = image_root(images)
    report = IngestReport(csv_path=str(csv), images_root=str(root), size=0)
    report.notes["laterals"] = laterals
    required = ("ImageID", "ImageDir", "PatientID", "PatientSex_DICOM", "Projection", "Labels")
    _, rows = read_csv(csv, required, "PadChest CSV")
    parsed: list[tuple[int, dict[str, str], list[str]]] = []
    freq: Counter[str] = Counter()
    for line, row in rows:
        report.rows += 1
        if not row:
            report.bad_rows.add(f"line {line}: unreadable or wrong number of fields")
            continue
        names = _labels(row["Labels"])
        if names is None:
            report.unknown_labels.add(f"line {line} ({row['ImageID']}): Labels {row['Labels'][:60]!r}")
            continue
        if EXCLUDE in names:
            report.excluded.add(f"line {line}: {row['ImageID']} (labelled 'exclude')")
            continue
        proj = row["Projection"].strip().upper()
        if view_code(proj) is None and laterals == "skip":
            report.excluded.add(f"line {line}: {row['ImageID']} (Projection {proj})")
            continue
        parsed.append((line, row, names))
        freq.update(n for n in set(names) if n != NORMAL)
    if findings:
        wanted = tuple(findings)
    else:
        wanted = tuple(sorted(n for n, c in freq.items() if c >= min_count))
    index = {n: i for i, n in enumerate(wanted)}
    records: list[Record] = []
    for line, row, names in parsed:
        vec = np.zeros(len(wanted), np.uint8)
        for n in names:
            if n in index:
                vec[index[n]] = 1
        rel = f"{row['ImageDir']}/{row['ImageID']}" if row["ImageDir"] else row["ImageID"]
        records.append(
            Record(
                line=line,
                key=row["ImageID"],
                path=resolve_under(root, rel) or resolve_under(root, row["ImageID"]),
                patient=f"padchest:{row['PatientID']}" if row["PatientID"] else "",
                findings=vec,
                gender=sex_code(row["PatientSex_DICOM"]),
                view=view_code(row["Projection"]),
                age=_age(row.get("PatientBirth", ""), row.get("StudyDate_DICOM", "")),
            )
        )
    report.notes["findings_seen"] = len(freq)
    general = ("gender",) if laterals == "keep" else ("gender", "view")
    config = {"laterals": laterals, "min_count": min_count, "findings_given": bool(findings)}
    return Source("padchest", records, wanted, report, config, general=general)


def _age(birth: str, study_date: str) -> int:
    """Whole years between the birth year and the study's year; -1 when either is unusable."""
    try:
        born = int(float(birth))
    except (ValueError, OverflowError):
        return -1
    if len(study_date) < 4 or not study_date[:4].isdigit():
        return -1
    age = int(study_date[:4]) - born
    return age if 0 <= age <= 120 else -1
