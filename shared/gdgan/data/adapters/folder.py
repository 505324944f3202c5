"""An ImageFolder-style tree: class subfolders are the labels (PNG/JPEG/DICOM inside).

- ``root/<class>/<file>``: each class folder is a finding (single-label); a folder named like
  "No Finding" / "normal" / "negative" is the all-zero vector.
- ``root/train/<class>/...`` and ``root/test/<class>/...``: the publisher's split is kept
  (``official_split`` 1 / 2).
- With ``finding="Cardiomegaly"``, class folders ``true``/``false``, ``1``/``0``, ``yes``/``no``
  or ``positive``/``negative`` give that one finding's label.
- There are no patients in a folder: each image is its own patient (so the patient-wise split is
  image-wise), unless DICOM headers carry a PatientID. Sex and view come only from DICOM headers
  ("auto": a general label when at least half the images have it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gdgan.data.adapters.common import (
    IMAGE_SUFFIXES,
    NO_FINDING_NAMES,
    AdapterError,
    Record,
    Source,
    image_root,
)
from gdgan.data.adapters.generic import FALSE, TRUE
from gdgan.data.nih import IngestReport

SPLITS = {"train": 1, "training": 1, "test": 2, "testing": 2}


def _files(d: Path) -> list[Path]:
    return sorted(
        p for p in d.rglob("*") if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or not p.suffix)
    )


def read_folder(
    root: str | Path, *, finding: str | None = None, general: tuple[str, ...] | str = "auto"
) -> Source:
    base = image_root(root)
    top = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if top and all(d.name.lower() in SPLITS for d in top):
        parts = [(d, SPLITS[d.name.lower()]) for d in top]
    else:
        parts = [(base, 0)]
    report = IngestReport(csv_path="", images_root=str(base), size=0)
    classes: list[tuple[Path, str, int]] = []
    for d, split in parts:
        for c in sorted(x for x in d.iterdir() if x.is_dir() and not x.name.startswith(".")):
            classes.append((c, c.name, split))
        for stray in sorted(x for x in d.iterdir() if x.is_file()):
            report.rows += 1
            report.bad_rows.add(f"{stray.relative_to(base)}: not inside a class folder")
    if not classes:
        raise AdapterError(
            f"no class subfolders in {base} (expected <class>/<image> or train|test/<class>/<image>)"
        )
    names = sorted({n for _c, n, _s in classes})
    if finding:
        wrong = [n for n in names if n.lower() not in TRUE | FALSE]
        if wrong:
            raise AdapterError(
                f"with --finding {finding!r} the class folders must be true/false, 1/0, yes/no or "
                f"positive/negative; found {wrong[0]!r}"
            )
        findings: tuple[str, ...] = (finding,)
    else:
        findings = tuple(n for n in names if n.lower() not in NO_FINDING_NAMES)
    records: list[Record] = []
    line = 0
    for cdir, cname, split in classes:
        vec = np.zeros(len(findings), np.uint8)
        if finding:
            vec[0] = 1 if cname.lower() in TRUE else 0
        elif cname in findings:
            vec[findings.index(cname)] = 1
        for f in _files(cdir):
            line += 1
            report.rows += 1
            key = f.relative_to(base).as_posix()
            records.append(Record(line, key, f, "", vec.copy(), split=split))
    mode = {"finding": finding} if finding else {"classes": list(names)}
    return Source(
        "folder", records, findings, report, {**mode, "split_folders": parts[0][1] != 0}, general=general
    )
