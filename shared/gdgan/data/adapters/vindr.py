"""VinDr-CXR (PhysioNet): DICOM images + per-radiologist image labels, merged by a stated rule.

Layout as published: ``train/<image_id>.dicom`` and ``test/<image_id>.dicom`` under the image root;
``annotations/image_labels_train.csv`` has one row per (image_id, rad_id) — three readers per
training image — with a 0/1 column per label; ``image_labels_test.csv`` has one consensus row per
test image. Merging readers (``merge``):

- ``majority``: positive when more than half of the image's readers marked it;
- ``any``: positive when at least one reader did (more sensitive, noisier).

"No finding" is the all-zero vector, not a finding. Sex and view come from the DICOM headers
(PatientSex, ViewPosition); each is a general label when at least half the images have it
("auto"), and then an image without it is skipped and counted. The train/test folders keep the
publisher's split (``official_split`` 1/2).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gdgan.data.adapters.common import AdapterError, Record, Source, image_root, read_csv, resolve_under
from gdgan.data.nih import IngestReport

Merge = Literal["majority", "any"]
MERGES: tuple[str, ...] = ("majority", "any")
NO_FINDING_COLUMN = "No finding"
_ID_COLUMNS = ("image_id", "rad_id")


def merge_readers(votes: np.ndarray, merge: str) -> np.ndarray:
    """(readers, F) 0/1 -> (F,) uint8 by ``merge``."""
    if merge == "any":
        return (votes.max(axis=0) > 0).astype(np.uint8)
    return (votes.sum(axis=0) * 2 > votes.shape[0]).astype(np.uint8)


def _image(root: Path, part: str, image_id: str) -> Path | None:
    for rel in (f"{part}/{image_id}.dicom", f"{part}/{image_id}.dcm", f"{image_id}.dicom", f"{image_id}.dcm"):
        p = resolve_under(root, rel)
        if p is not None:
            return p
    return None


def read_vindr(
    labels: str | Path,
    images: str | Path,
    *,
    test_labels: str | Path | None = None,
    merge: str = "majority",
    general: tuple[str, ...] | str = "auto",
) -> Source:
    if merge not in MERGES:
        raise AdapterError(f"merge must be one of {', '.join(MERGES)}, got {merge!r}")
    root = image_root(images)
    report = IngestReport(csv_path=str(labels), images_root=str(root), size=0)
    report.notes["merge"] = merge
    header, rows = read_csv(labels, _ID_COLUMNS, "VinDr-CXR image label CSV")
    if "class_name" in header:  # the box annotations (annotations_train.csv, Kaggle's train.csv)
        findings, votes, first_line = _long_votes(header, rows, report)
    else:
        findings, votes, first_line = _wide_votes(header, rows, report)
    # one row per reader: count images, not reader rows, so "skipped" stays images
    report.notes["reader_rows"] = report.rows
    report.rows = len(votes) + report.bad_rows.count + report.unknown_labels.count
    readers = [len(v) for v in votes.values()]
    report.notes["readers_per_image"] = {str(k): readers.count(k) for k in sorted(set(readers))}
    records = [
        Record(
            line=first_line[iid],
            key=f"train/{iid}",
            path=_image(root, "train", iid),
            patient="",  # VinDr has no patient ids: the DICOM PatientID if any, else the image
            findings=merge_readers(np.stack(v), merge),
            split=1,
        )
        for iid, v in votes.items()
    ]
    if test_labels is not None:
        records += _test_records(root, test_labels, findings, report)
    return Source("vindr", records, findings, report, {"merge": merge}, general=general)


_Votes = tuple[tuple[str, ...], dict[str, list[np.ndarray]], dict[str, int]]


def _long_votes(header: list[str], rows: Any, report: IngestReport) -> _Votes:
    """One row per (image, reader, box): a reader's labels are the classes of their boxes."""
    marks: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    first_line: dict[str, int] = {}
    class_ids: dict[str, float] = {}
    for line, row in rows:
        if not row or not row["image_id"] or not row.get("class_name"):
            report.bad_rows.add(f"line {line}: unreadable, wrong number of fields, no image_id or class_name")
            continue
        name = row["class_name"].strip()
        marks[row["image_id"]][row["rad_id"]].add(name)
        first_line.setdefault(row["image_id"], line)
        if name != NO_FINDING_COLUMN:
            try:
                class_ids.setdefault(name, float(row.get("class_id", "") or "inf"))
            except ValueError:
                class_ids.setdefault(name, float("inf"))
    report.rows = sum(len(r) for r in marks.values())  # reader rows, as the wide format counts them
    findings = tuple(sorted(class_ids, key=lambda n: (class_ids[n], n)))  # the publisher's class order
    index = {n: i for i, n in enumerate(findings)}
    votes: dict[str, list[np.ndarray]] = {}
    for iid, by_reader in marks.items():
        vs = []
        for names in by_reader.values():
            v = np.zeros(len(findings), np.uint8)
            for n in names - {NO_FINDING_COLUMN}:
                v[index[n]] = 1
            vs.append(v)
        votes[iid] = vs
    return findings, votes, first_line


def _wide_votes(header: list[str], rows: Any, report: IngestReport) -> _Votes:
    """One row per (image, reader) with a 0/1 column per label (image_labels_train.csv)."""
    findings = tuple(h for h in header if h not in (*_ID_COLUMNS, NO_FINDING_COLUMN))
    votes: dict[str, list[np.ndarray]] = defaultdict(list)
    first_line: dict[str, int] = {}
    for line, row in rows:
        report.rows += 1
        if not row or not row["image_id"]:
            report.bad_rows.add(f"line {line}: unreadable, wrong number of fields or no image_id")
            continue
        try:
            v = np.array([int(float(row[f] or 0)) for f in findings], np.uint8)
        except ValueError:
            report.unknown_labels.add(f"line {line} ({row['image_id']}): a label value is not 0/1")
            continue
        if (v > 1).any():
            report.unknown_labels.add(f"line {line} ({row['image_id']}): a label value is not 0/1")
            continue
        votes[row["image_id"]].append(v)
        first_line.setdefault(row["image_id"], line)
    return findings, votes, first_line


def _test_records(
    root: Path, test_labels: str | Path, findings: tuple[str, ...], report: IngestReport
) -> list[Record]:
    """The consensus test labels (image_labels_test.csv): one row per test image, the test part."""
    out: list[Record] = []
    _, trows = read_csv(test_labels, ("image_id", *findings), "VinDr-CXR test label CSV")
    for line, row in trows:
        report.rows += 1
        if not row or not row["image_id"]:
            report.bad_rows.add(f"test line {line}: unreadable or no image_id")
            continue
        try:
            v = np.array([int(float(row[f] or 0)) for f in findings], np.uint8)
        except ValueError:
            report.unknown_labels.add(f"test line {line} ({row['image_id']}): a label value is not 0/1")
            continue
        iid = row["image_id"]
        out.append(Record(line, f"test/{iid}", _image(root, "test", iid), "", np.minimum(v, 1), split=2))
    return out
