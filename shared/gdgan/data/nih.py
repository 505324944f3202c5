"""NIH ChestX-ray14 adapter: ``Data_Entry_2017*.csv`` + PNG folders -> an :class:`ImageDataset`.

Why this shape:
- Decoding 112k PNGs of 1024² is the slow part (the authors' code repeats it on every training
  step). It is done once, in parallel and resumably (:mod:`gdgan.data.decode`); the report is
  :mod:`gdgan.data.ingest_report`. This module reads NIH's CSV, matches its rows to files, and
  assembles the dataset.
- The real set is messy (RGBA and 16-bit PNGs, a few bad rows), so every image is normalised to
  8-bit grayscale, and a bad row or file is counted, exemplified in the :class:`IngestReport`
  and skipped — one broken file never loses an hour of decoding.
- Resizing uses Pillow's LANCZOS filter (with ``reducing_gap``: a box pre-reduction, then
  LANCZOS) so the 16× downscale does not alias.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdgan.data.decode import (  # re-exported: the adapters and callers import them from here
    CHUNK_SIZE,
    PIPELINE_VERSION,
    DecodeError,
    IngestCancelled,
    decode_gray,
    decode_images,
    default_workers,
)
from gdgan.data.ingest_report import MAX_EXAMPLES, IngestReport, Problem
from gdgan.labels import (
    AGE_BAND,
    GENDERS,
    N_FINDINGS,
    NIH_SCHEMA,
    VIEWS,
    LabelError,
    LabelSchema,
    encode_findings,
)
from gdgan.progress import ProgressCallback, StopFlag

if TYPE_CHECKING:  # imported lazily: reading a CSV needs no store or pydantic
    from gdgan.data.dataset import ImageDataset
    from gdgan.store import ArtifactStore, Manifest

REQUIRED_CSV_COLUMNS: tuple[str, ...] = (
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
)
CSV_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
OFFICIAL_TRAIN_LIST = "train_val_list.txt"
OFFICIAL_TEST_LIST = "test_list.txt"
MAX_PLAUSIBLE_AGE = 120  # NIH has a few ages like 414: kept as unknown (-1), counted
IMAGE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.png$", re.IGNORECASE)
_AGE_RE = re.compile(r"^(\d{1,3})([YMDW]?)$", re.IGNORECASE)


class NIHFormatError(ValueError):
    """The CSV, image folder or official lists cannot be used at all (not a single bad row)."""


# --------------------------------------------------------------------------------------------
# CSV and folders
# --------------------------------------------------------------------------------------------
@dataclass
class _Row:
    line: int
    image_index: str
    patient_id: int
    follow_up: int
    age: int
    gender: int
    view: int
    findings: np.ndarray


def find_csv(path: str | Path) -> Path:
    """A CSV path as given, or the NIH CSV inside a folder (v2020 preferred)."""
    p = Path(path)
    if p.is_dir():
        for name in CSV_NAMES:
            if (p / name).is_file():
                return p / name
        raise NIHFormatError(f"no {' or '.join(CSV_NAMES)} in {p}")
    if not p.is_file():
        raise NIHFormatError(f"NIH label CSV not found: {p}")
    return p


def _parse_age(text: str) -> int | None:
    """'58', '058Y' (old NIH CSV), '' (unknown -> -1); months/days/weeks -> 0 years; else None."""
    t = text.strip()
    if not t:
        return -1
    m = _AGE_RE.fullmatch(t)
    if not m:
        return None
    value, unit = int(m.group(1)), m.group(2).upper()
    return value if unit in ("", "Y") else 0


def _parse_int(text: str) -> int | None:
    t = text.strip()
    return int(t) if t.isdigit() else None


def read_nih_csv(csv_path: Path, report: IngestReport) -> list[_Row]:
    """Parse and validate rows; bad and duplicate rows are reported and dropped."""
    try:
        fh = open(csv_path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise NIHFormatError(f"cannot read NIH label CSV {csv_path}: {exc}") from None
    rows: list[_Row] = []
    seen: set[str] = set()
    with fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise NIHFormatError(f"NIH label CSV {csv_path} is empty") from None
        except csv.Error as exc:
            raise NIHFormatError(f"NIH label CSV {csv_path} is not a CSV file: {exc}") from None
        missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
        if missing:
            raise NIHFormatError(
                f"NIH label CSV {csv_path} lacks required column(s) {', '.join(repr(c) for c in missing)}; "
                f"found {', '.join(repr(h) for h in header[:12])}"
            )
        col = {c: header.index(c) for c in REQUIRED_CSV_COLUMNS}
        need = max(col.values()) + 1
        line = 1
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                line += 1
                report.rows += 1
                report.bad_rows.add(f"line {line}: unreadable CSV record ({exc})")
                continue
            line += 1
            if not rec or all(not x.strip() for x in rec):
                continue
            report.rows += 1
            row = _validate_row(rec, col, need, line, report)
            if row is None:
                continue
            if row.image_index in seen:
                report.duplicate_rows.add(f"line {line}: {row.image_index}")
                continue
            seen.add(row.image_index)
            rows.append(row)
    return rows


def _validate_row(
    rec: list[str], col: dict[str, int], need: int, line: int, report: IngestReport
) -> _Row | None:
    def bad(reason: str) -> None:
        name = rec[col["Image Index"]].strip() if len(rec) > col["Image Index"] else "?"
        report.bad_rows.add(f"line {line} ({name}): {reason}")

    if len(rec) < need:
        bad(f"{len(rec)} fields, expected at least {need}")
        return None
    name = rec[col["Image Index"]].strip()
    if not IMAGE_NAME_RE.fullmatch(name) or ".." in name:
        bad(f"bad Image Index {name[:60]!r} (a plain .png file name is expected)")
        return None
    try:
        findings = encode_findings(rec[col["Finding Labels"]]).astype(np.uint8)
    except LabelError as exc:
        bad(str(exc).split(";")[0])
        return None
    gender = rec[col["Patient Gender"]].strip().upper()
    if gender not in GENDERS:
        bad(f"Patient Gender {gender!r} is not M or F")
        return None
    view = rec[col["View Position"]].strip().upper()
    if view not in VIEWS:
        bad(f"View Position {view!r} is not PA or AP")
        return None
    pid = _parse_int(rec[col["Patient ID"]])
    if pid is None:
        bad(f"Patient ID {rec[col['Patient ID']]!r} is not a non-negative integer")
        return None
    fu = _parse_int(rec[col["Follow-up #"]])
    if fu is None:
        bad(f"Follow-up # {rec[col['Follow-up #']]!r} is not a non-negative integer")
        return None
    age = _parse_age(rec[col["Patient Age"]])
    if age is None:
        bad(f"Patient Age {rec[col['Patient Age']]!r} is not a number of years")
        return None
    if age > MAX_PLAUSIBLE_AGE:
        report.implausible_ages.add(f"line {line} ({name}): age {age}")
        age = -1
    return _Row(line, name, pid, fu, age, GENDERS.index(gender), VIEWS.index(view), findings)


def index_images(images_root: str | Path) -> dict[str, Path]:
    """File name -> path for PNGs laid out flat, in ``images/`` or NIH's ``images_NNN/images/``."""
    root = Path(images_root)
    if not root.is_dir():
        raise NIHFormatError(f"image folder not found: {root}")
    dirs = [root, root / "images"]
    for sub in sorted(root.glob("images_*")):
        dirs += [sub / "images", sub]
    found: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        with os.scandir(d) as it:
            for entry in it:
                if entry.name.lower().endswith(".png") and entry.name not in found and entry.is_file():
                    found[entry.name] = Path(entry.path)
    return found


def read_official_lists(folder: str | Path) -> dict[str, int]:
    """NIH's train_val_list.txt (-> 1) and test_list.txt (-> 2): file name -> official split."""
    d = Path(folder)
    out: dict[str, int] = {}
    for fname, code in ((OFFICIAL_TRAIN_LIST, 1), (OFFICIAL_TEST_LIST, 2)):
        p = d / fname
        if not p.is_file():
            raise NIHFormatError(f"official list {fname} not found in {d}")
        for raw in p.read_text(encoding="utf-8-sig").splitlines():
            name = raw.strip()
            if name:
                if out.get(name, code) != code:
                    raise NIHFormatError(f"{name} is in both {OFFICIAL_TRAIN_LIST} and {OFFICIAL_TEST_LIST}")
                out[name] = code
    return out


def _csv_digest(csv_path: Path) -> str:
    h = hashlib.sha256()
    with open(csv_path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def ingest_nih(
    csv_path: str | Path,
    images_root: str | Path,
    size: int,
    *,
    workers: int | None = None,
    official_lists_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    resume_dir: str | Path | None = None,
    limit: int | None = None,
    should_stop: StopFlag | None = None,
    keep_work: bool = False,
    chunk_size: int = CHUNK_SIZE,
    age_band: bool = False,
    salt: str | None = None,
) -> tuple[ImageDataset, IngestReport]:
    """Read NIH ChestX-ray14 labels and images into an ImageDataset of ``size``² uint8 images.

    ``age_band`` adds an age band (``Patient Age``, edges from ``GDGAN_AGE_BAND_EDGES``) to the
    general labels; rows without a plausible age are then left out and counted.

    ``resume_dir`` (default: ``<cache_dir>/ingest``) holds a work folder keyed by the CSV's hash
    and the size; finished chunks there are reused by a rerun, and the folder is removed after
    a successful ingest unless ``keep_work``. ``limit`` keeps only the first N usable rows.
    NIH's patient ids are stored as salted hashes (``salt``, default GDGAN_PATIENT_ID_SALT or a
    random one never stored), as every other adapter stores them: a split only needs equality.
    """
    from gdgan.data.dataset import OFFICIAL_SPLIT_COLUMN, SUPPORTED_SIZES, ImageDataset

    if size not in SUPPORTED_SIZES:
        raise NIHFormatError(f"size must be one of {SUPPORTED_SIZES}, got {size}")
    if limit is not None and limit < 1:
        raise NIHFormatError(f"limit must be >= 1, got {limit}")
    t0 = time.monotonic()
    csv_file = find_csv(csv_path)
    report = IngestReport(csv_path=str(csv_file), images_root=str(images_root), size=size)
    official = read_official_lists(official_lists_dir) if official_lists_dir is not None else None
    rows = read_nih_csv(csv_file, report)
    files = index_images(images_root)

    usable: list[_Row] = []
    paths: list[str] = []
    for r in rows:
        p = files.get(r.image_index)
        if p is None:
            report.missing_files.add(f"line {r.line}: {r.image_index}")
            continue
        if age_band and r.age < 0:
            report.missing_general.add(f"line {r.line}: {r.image_index}: no age_band")
            continue
        usable.append(r)
        paths.append(str(p))
        if limit is not None and len(usable) >= limit:
            break

    digest = _csv_digest(csv_file)
    # Keyed by the CSV's content, the image folder, size, chunking and pipeline version, so a
    # rerun of the *same* ingest resumes and anything else starts afresh.
    key = hashlib.sha256(
        f"{digest}|{Path(images_root).resolve()}|{size}|{chunk_size}|{PIPELINE_VERSION}"
        f"{'|age' if age_band else ''}".encode()
    ).hexdigest()[:20]
    images, keep = decode_images(
        [r.image_index for r in usable],
        paths,
        size,
        report,
        work_key=f"nih-{key}",
        lines=[r.line for r in usable],
        workers=workers,
        resume_dir=resume_dir,
        progress=progress,
        should_stop=should_stop,
        keep_work=keep_work,
        chunk_size=chunk_size,
    )
    total = len(usable)

    from gdgan.data.pseudonym import patient_hasher

    hash_id, how = patient_hasher(salt)
    idx = np.flatnonzero(keep)
    kept = [usable[i] for i in idx]
    report.ingested = len(kept)
    if not kept:
        raise NIHFormatError("no usable images:\n" + report.summary())
    labels: dict[str, np.ndarray] = {
        "image_index": np.array([r.image_index for r in kept], dtype=str),
        "patient_id": np.array([hash_id(f"nih:{r.patient_id}") for r in kept], dtype=np.int32),
        "follow_up": np.array([r.follow_up for r in kept], dtype=np.int32),
        "age": np.array([r.age for r in kept], dtype=np.int16),
        "gender": np.array([r.gender for r in kept], dtype=np.uint8),
        "view": np.array([r.view for r in kept], dtype=np.uint8),
        "findings": np.stack([r.findings for r in kept]).astype(np.uint8).reshape(-1, N_FINDINGS),
    }
    if official is not None:
        codes = np.array([official.get(r.image_index, 0) for r in kept], dtype=np.uint8)
        for r, c in zip(kept, codes):
            if c == 0:
                report.unlisted.add(r.image_index)
        labels[OFFICIAL_SPLIT_COLUMN] = codes
    out_images = images if len(idx) == total else images[idx]
    report.elapsed_s = time.monotonic() - t0
    config = {
        "source": "nih",
        "csv": csv_file.name,
        "csv_sha256": digest,
        "size": size,
        "official_lists": official is not None,
        "limit": limit,
        "resize": "pillow-lanczos(reducing_gap=3)",
        "patient_id": how,
    }
    schema = NIH_SCHEMA
    if age_band:
        from gdgan.settings import get_settings

        edges = get_settings().age_edges()
        schema = LabelSchema(general=("gender", "view", AGE_BAND), age_edges=edges)
        config["age_band_edges"] = list(edges)
    ds = ImageDataset(images=out_images, labels=labels, config=config, schema=schema)
    return ds, report


def ingest_nih_to_store(
    csv: str | Path,
    images: str | Path,
    size: int,
    store: ArtifactStore,
    *,
    artifact_id: str | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopFlag | None = None,
    key_map: str | Path | None = None,
    **kwargs: Any,
) -> Manifest | None:
    """:func:`ingest_nih`, then save the dataset artifact (report in ``meta.ingest``, redacted).

    ``key_map``: a local CSV to receive the stored (hashed) image keys and their source file names.

    For jobs and the CLI: returns the manifest, or None when ``should_stop`` cancelled the
    ingest (finished chunks stay in the work folder, so a rerun resumes). ``kwargs`` go to
    :func:`ingest_nih` (workers, official_lists_dir, resume_dir, limit, ...).
    """
    try:
        ds, report = ingest_nih(csv, images, size, progress=progress, should_stop=should_stop, **kwargs)
    except IngestCancelled:
        return None
    meta = {"source": "nih", "ingest": report.to_dict(redact=True)}
    return ds.save(
        store, config=ds.config, meta=meta, artifact_id=artifact_id, salt=kwargs.get("salt"), key_map=key_map
    )


__all__ = [
    "CHUNK_SIZE",
    "MAX_EXAMPLES",
    "PIPELINE_VERSION",
    "REQUIRED_CSV_COLUMNS",
    "DecodeError",
    "IngestCancelled",
    "IngestReport",
    "NIHFormatError",
    "Problem",
    "decode_gray",
    "decode_images",
    "default_workers",
    "find_csv",
    "index_images",
    "ingest_nih",
    "ingest_nih_to_store",
    "read_nih_csv",
    "read_official_lists",
]
