"""What every non-NIH adapter shares: rows -> a checked, decoded, schema-carrying ImageDataset.

An adapter's only job is to read its publisher's layout into :class:`Record`s (one per image,
with labels already mapped to the schema) and say which labels exist; :func:`build_dataset` then
does the rest the same way for every source, reusing NIH's machinery (the report, the threaded
resumable decoder, the PNG/JPEG/DICOM decoding): drop duplicates, missing files and rows lacking
a general label the schema has, fill sex/view from DICOM headers where the table lacks them, hash
patient identifiers with a salt, decode, and skip (and report) whatever cannot be decoded.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdgan.data.decode import CHUNK_SIZE, PIPELINE_VERSION, decode_images
from gdgan.data.ingest_report import IngestReport
from gdgan.data.nih import NIHFormatError
from gdgan.data.pseudonym import patient_hasher
from gdgan.labels import AGE_BAND, GENDERS, GENERAL_LABELS, VIEWS, LabelSchema
from gdgan.progress import ProgressCallback, StopFlag

if TYPE_CHECKING:
    from gdgan.data.dataset import ImageDataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".dic")
GENERAL_AUTO_SHARE = 0.5  # "auto": a general label is used when at least half the rows have it
NO_FINDING_NAMES = frozenset({"no finding", "no_finding", "normal", "none", "negative"})


class AdapterError(NIHFormatError):
    """The input cannot be used at all (a missing file or column, a bad option); never one bad row."""


@dataclass
class Record:
    """One image, its labels already in the schema's terms (codes 0/1, None = unknown)."""

    line: int  # CSV line, or position in a folder walk, for the report
    key: str  # the path as the source lists it; stored as a salted hash (gdgan.data.pseudonym)
    path: Path | None  # the file, None when it was not found
    patient: str  # the source's patient key; only its salted hash is stored
    findings: np.ndarray  # (F,) uint8 in the schema's order
    gender: int | None = None
    view: int | None = None
    age: int = -1
    follow_up: int = 0
    split: int = 0  # 0 = none given, 1 = the publisher's train part, 2 = its test part


@dataclass
class Source:
    """An adapter's reading of its input, before images are decoded."""

    name: str
    records: list[Record]
    findings: tuple[str, ...]
    report: IngestReport
    config: dict[str, Any] = field(default_factory=dict)
    # general labels the source can give: a tuple, or "auto" (decided from the rows after DICOM fill-in)
    general: tuple[str, ...] | str = "auto"


# --------------------------------------------------------------------------------------------
# small helpers the adapters share
# --------------------------------------------------------------------------------------------
def open_text(path: Path) -> io.TextIOBase:
    """A CSV as text, gzip'd (MIMIC, torchxrayvision's copies) or not."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def read_csv(
    path: str | Path, required: Sequence[str], what: str
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header and (line, row) pairs; a missing file or required column is an AdapterError naming it."""
    p = Path(path)
    if not p.is_file():
        raise AdapterError(f"{what} not found: {p}")
    fh = open_text(p)
    reader = csv.reader(fh)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error, OSError, UnicodeDecodeError) as exc:
        fh.close()
        raise AdapterError(f"{what} {p} is empty or not a CSV file ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        fh.close()
        raise AdapterError(
            f"{what} {p} lacks column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(repr(h) for h in header[:16])}"
        )

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        line = 1
        with fh:
            while True:
                try:
                    rec = next(reader)
                except StopIteration:
                    return
                except csv.Error:
                    line += 1
                    yield line, {}
                    continue
                line += 1
                if not rec or all(not x.strip() for x in rec):
                    continue
                if len(rec) != len(header):
                    yield line, {}
                    continue
                yield line, {h: v.strip() for h, v in zip(header, rec)}

    return header, rows()


def image_root(images: str | Path) -> Path:
    """The image folder every adapter reads under, checked up front so a typo fails before any
    CSV is parsed."""
    root = Path(images)
    if not root.is_dir():
        raise AdapterError(f"image folder not found: {root}")
    return root


def resolve_under(root: Path, rel: str) -> Path | None:
    """``root/rel`` if it exists and stays inside ``root`` (no '..' or symlink escapes); else None.

    Cheap for the common miss (one ``stat``): a label file lists every image of a dataset of which
    only part may be present, and resolving 200k absent paths component by component took minutes.
    """
    if not rel or "\x00" in rel or os.path.isabs(rel):
        return None
    norm = os.path.normpath(rel)
    if norm == ".." or norm.startswith(".." + os.sep):
        return None
    cand = os.path.join(root, norm)
    if not os.path.isfile(cand):
        return None
    p = Path(cand).resolve()
    base = root.resolve()
    return p if base in p.parents else None


def sex_code(text: str) -> int | None:
    t = text.strip().upper()
    t = {"MALE": "M", "FEMALE": "F"}.get(t, t)
    return GENDERS.index(t) if t in GENDERS else None


def view_code(text: str) -> int | None:
    t = text.strip().upper().replace("-", "_")
    t = {"AP_HORIZONTAL": "AP", "AP_SUPINE": "AP", "AP_AXIAL": "AP", "PA_AXIAL": "PA"}.get(t, t)
    return VIEWS.index(t) if t in VIEWS else None


def parse_age(text: str) -> int:
    t = text.strip()
    try:
        v = int(float(t))
    except ValueError:
        return -1
    return v if 0 <= v <= 120 else -1


def fill_from_dicom(records: Iterable[Record], report: IngestReport) -> dict[str, Any]:
    """Sex, view, age and pixel spacing from DICOM headers where the table left them unknown.

    The header's PatientID replaces a record's patient key only when the source gave none
    (``patient == ""``); it is hashed with the other keys and never stored in the clear.
    Returns per-key extra columns (pixel spacing) and the count of DICOM files seen.
    """
    from gdgan.data.dicom import DicomError, is_dicom, read_header

    spacing: dict[str, tuple[float, float]] = {}
    n = 0
    for r in records:
        if r.path is None or not is_dicom(r.path):
            continue
        try:
            h = read_header(r.path)
        except DicomError:
            continue  # the decoder reports it as a corrupt file
        n += 1
        if r.gender is None and h.sex is not None:
            r.gender = GENDERS.index(h.sex)
        if r.view is None and h.view is not None:
            r.view = VIEWS.index(h.view)
        if r.age < 0 and h.age is not None and 0 <= h.age <= 120:
            r.age = h.age
        if not r.patient and h.patient_key:
            r.patient = "dicom:" + h.patient_key
        if h.pixel_spacing is not None:
            spacing[r.key] = h.pixel_spacing
    return {"dicom_files": n, "spacing": spacing}


def choose_general(
    records: Sequence[Record], wanted: tuple[str, ...] | str, report: IngestReport
) -> tuple[str, ...]:
    """The general labels of the schema: as asked, or under "auto" sex and view when at least half
    the rows have them (an age band is never automatic: it multiplies stage 1's groups, so a
    user asks for it)."""
    if wanted != "auto":
        assert isinstance(wanted, tuple)
        return tuple(g for g in GENERAL_LABELS if g in wanted)
    out = []
    for g in ("gender", "view"):
        have = sum(getattr(r, g) is not None for r in records)
        report.notes[f"{g}_known"] = have
        if records and have / len(records) >= GENERAL_AUTO_SHARE:
            out.append(g)
    return tuple(out)


def age_edges_for(general: Sequence[str]) -> tuple[int, ...]:
    """The configured band edges when the schema has an age band (recorded in the schema)."""
    if AGE_BAND not in general:
        return ()
    from gdgan.settings import get_settings

    return get_settings().age_edges()


# --------------------------------------------------------------------------------------------
# the shared second half of every adapter
# --------------------------------------------------------------------------------------------
def known(r: Record, label: str) -> bool:
    """Whether a record has a value for a general label (an age band needs a plausible age)."""
    return r.age >= 0 if label == AGE_BAND else getattr(r, label) is not None


def with_age_band(general: tuple[str, ...], age_band: bool) -> tuple[str, ...]:
    return tuple(g for g in GENERAL_LABELS if g in general or (age_band and g == AGE_BAND))


def build_dataset(
    src: Source,
    size: int,
    *,
    age_band: bool = False,
    workers: int | None = None,
    resume_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopFlag | None = None,
    limit: int | None = None,
    keep_work: bool = False,
    chunk_size: int = CHUNK_SIZE,
    salt: str | None = None,
) -> ImageDataset:
    """Check, decode and assemble the records of ``src`` into an ImageDataset with its schema.

    ``age_band`` adds the age band (edges from ``GDGAN_AGE_BAND_EDGES``) to the general labels the
    source gives; images without a plausible age are then left out and counted."""
    from gdgan.data.dataset import OFFICIAL_SPLIT_COLUMN, SUPPORTED_SIZES, ImageDataset

    if size not in SUPPORTED_SIZES:
        raise AdapterError(f"size must be one of {SUPPORTED_SIZES}, got {size}")
    if limit is not None and limit < 1:
        raise AdapterError(f"limit must be >= 1, got {limit}")
    t0 = time.monotonic()
    report = src.report
    report.size = size
    seen: set[str] = set()
    found: list[Record] = []
    for r in src.records:
        if r.key in seen:
            report.duplicate_rows.add(f"line {r.line}: {r.key}")
            continue
        seen.add(r.key)
        if r.path is None:
            report.missing_files.add(f"line {r.line}: {r.key}")
            continue
        found.append(r)
    extra = fill_from_dicom(found, report)
    general = with_age_band(choose_general(found, src.general, report), age_band)
    schema = LabelSchema(general=general, findings=src.findings, age_edges=age_edges_for(general))
    usable: list[Record] = []
    for r in found:
        lacking = [g for g in general if not known(r, g)]
        if lacking:
            report.missing_general.add(f"line {r.line}: {r.key}: no {' or '.join(lacking)}")
            continue
        usable.append(r)
        if limit is not None and len(usable) >= limit:
            break
    ident = json.dumps(
        [src.name, src.config, [(r.key, str(r.path)) for r in usable], chunk_size, PIPELINE_VERSION],
        sort_keys=True,
        default=str,
    )
    work_key = f"{src.name}-{hashlib.sha256(ident.encode()).hexdigest()[:20]}"
    images, keep = decode_images(
        [r.key for r in usable],
        [str(r.path) for r in usable],
        size,
        report,
        work_key=work_key,
        lines=[r.line for r in usable],
        workers=workers,
        resume_dir=resume_dir,
        progress=progress,
        should_stop=should_stop,
        keep_work=keep_work,
        chunk_size=chunk_size,
    )
    idx = np.flatnonzero(keep)
    kept = [usable[i] for i in idx]
    report.ingested = len(kept)
    if not kept:
        raise AdapterError("no usable images:\n" + report.summary())
    hash_id, how = patient_hasher(salt)
    labels: dict[str, np.ndarray] = {
        "image_index": np.array([r.key for r in kept], dtype=str),
        "patient_id": np.array([hash_id(r.patient or f"image:{r.key}") for r in kept], dtype=np.int32),
        "follow_up": np.array([r.follow_up for r in kept], dtype=np.int32),
        "age": np.array([r.age for r in kept], dtype=np.int16),
        "gender": np.array([r.gender or 0 for r in kept], dtype=np.uint8),
        "view": np.array([r.view or 0 for r in kept], dtype=np.uint8),
        "findings": np.stack([r.findings for r in kept])
        .astype(np.uint8)
        .reshape(len(kept), schema.n_findings),
    }
    if any(r.split for r in kept):
        labels[OFFICIAL_SPLIT_COLUMN] = np.array([r.split for r in kept], dtype=np.uint8)
    spacing = extra["spacing"]
    if spacing:  # mm per pixel of the *source* image (row, column); NaN where unknown
        labels["pixel_spacing"] = np.array(
            [spacing.get(r.key, (np.nan, np.nan)) for r in kept], dtype=np.float32
        ).reshape(-1, 2)
    report.notes.update({"dicom_files": extra["dicom_files"], "patient_id": how})
    report.elapsed_s = time.monotonic() - t0
    config = {
        "source": src.name,
        **src.config,
        "size": size,
        "limit": limit,
        "resize": "pillow-lanczos(reducing_gap=3)",
    }
    out_images = images if len(idx) == len(usable) else images[idx]
    return ImageDataset(images=out_images, labels=labels, config=config, schema=schema)
