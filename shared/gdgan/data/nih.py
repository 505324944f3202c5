"""NIH ChestX-ray14 adapter: ``Data_Entry_2017*.csv`` + PNG folders -> an :class:`ImageDataset`.

Why this shape:
- Decoding 112k PNGs of 1024² is the slow part (the authors' code repeats it on every training
  step). It is done once here, by a pool of decoder threads (Pillow releases the GIL while it
  inflates and resamples), each writing finished chunks to a work folder; an interrupted ingest
  resumes by skipping the chunks already there.
- The real set is messy (RGBA and 16-bit PNGs, a few bad rows), so every image is normalised to
  8-bit grayscale, and a bad row or file is counted, exemplified in the :class:`IngestReport`
  and skipped — one broken file never loses an hour of decoding.
- Resizing uses Pillow's LANCZOS filter (with ``reducing_gap``: a box pre-reduction, then
  LANCZOS) so the 16× downscale does not alias.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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
from gdgan.progress import Cancelled, Progress, ProgressCallback, StopFlag

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
CHUNK_SIZE = 256  # images per worker task and per resumable work file
MAX_EXAMPLES = 5  # examples kept per problem category in the report
MAX_PLAUSIBLE_AGE = 120  # NIH has a few ages like 414: kept as unknown (-1), counted
PIPELINE_VERSION = 1  # part of the work-folder key: bump when decoding changes
IMAGE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.png$", re.IGNORECASE)
_LINE_RE = re.compile(r"line \d+")  # a redacted example keeps only its "line N"
_AGE_RE = re.compile(r"^(\d{1,3})([YMDW]?)$", re.IGNORECASE)


class NIHFormatError(ValueError):
    """The CSV, image folder or official lists cannot be used at all (not a single bad row)."""


class IngestCancelled(Cancelled):
    """``should_stop`` asked the ingest to stop; finished chunks stay in the work folder."""


class DecodeError(ValueError):
    """One image file cannot be read or decoded."""


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
@dataclass
class Problem:
    """A category of skipped input: how many, and the first few examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)


@dataclass
class IngestReport:
    """What an ingest read, kept, skipped and why (goes into the dataset manifest's meta)."""

    csv_path: str
    images_root: str
    size: int
    rows: int = 0
    ingested: int = 0
    bad_rows: Problem = field(default_factory=Problem)
    duplicate_rows: Problem = field(default_factory=Problem)
    missing_files: Problem = field(default_factory=Problem)
    corrupt_files: Problem = field(default_factory=Problem)
    implausible_ages: Problem = field(default_factory=Problem)
    unlisted: Problem = field(default_factory=Problem)
    # used by the other adapters (gdgan.data.adapters); always zero for NIH
    unknown_labels: Problem = field(default_factory=Problem)
    excluded: Problem = field(default_factory=Problem)
    missing_general: Problem = field(default_factory=Problem)
    notes: dict[str, Any] = field(default_factory=dict)
    source_modes: dict[str, int] = field(default_factory=dict)
    non_square: int = 0
    chunks: int = 0
    chunks_reused: int = 0
    workers: int = 1
    elapsed_s: float = 0.0
    decode_cpu_s: float = 0.0  # CPU seconds the decoders spent (all workers; resumed chunks included)

    @property
    def skipped(self) -> int:
        return self.rows - self.ingested

    @property
    def images_per_s(self) -> float:
        return self.ingested / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self, *, redact: bool = False) -> dict[str, Any]:
        """The report as plain data; ``redact`` (for the stored manifest) keeps each example's
        ``line N`` only, since examples quote source file names that embed patient ids."""
        d = asdict(self)
        if redact:
            for v in d.values():
                if isinstance(v, dict) and isinstance(v.get("examples"), list):
                    v["examples"] = [m.group(0) if (m := _LINE_RE.match(ex)) else "-" for ex in v["examples"]]
        d["skipped"] = self.skipped
        d["images_per_s"] = round(self.images_per_s, 1)
        d["elapsed_s"] = round(self.elapsed_s, 3)
        d["decode_cpu_s"] = round(self.decode_cpu_s, 3)
        return d

    def problems(self) -> dict[str, Problem]:
        return {
            "bad rows": self.bad_rows,
            "duplicate rows": self.duplicate_rows,
            "missing files": self.missing_files,
            "corrupt files": self.corrupt_files,
            "implausible ages (kept as unknown)": self.implausible_ages,
            "not in the official lists (kept, official_split=0)": self.unlisted,
            "unknown label values": self.unknown_labels,
            "excluded by request": self.excluded,
            "lacking a general label of the schema": self.missing_general,
        }

    def summary(self) -> str:
        lines = [
            f"ingested {self.ingested} of {self.rows} rows at {self.size}px "
            f"in {self.elapsed_s:.1f}s ({self.images_per_s:.0f} images/s, {self.workers} workers; "
            f"{self.chunks_reused}/{self.chunks} chunks resumed)"
        ]
        for name, p in self.problems().items():
            if p.count:
                lines.append(f"  {name}: {p.count}; e.g. " + "; ".join(p.examples))
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# one image
# --------------------------------------------------------------------------------------------
def _high_depth_to_float(arr: np.ndarray) -> np.ndarray:
    """16-bit (or float) pixels -> float32 in [0, 255].

    The scale is the bit depth actually used (max < 2**b): a 12-bit detector image stored in
    a 16-bit PNG maps 4095 -> 255 instead of looking nearly black after a fixed /257, while two
    images of the same depth keep the same scale (no per-image contrast stretch). Values that
    already fit 8 bits are kept as they are.
    """
    arr = arr.astype(np.float32, copy=False)
    lo = float(arr.min()) if arr.size else 0.0
    if lo < 0:
        arr = arr - lo
    hi = float(arr.max()) if arr.size else 0.0
    if hi <= 255.0:
        return arr
    bits = min(16, max(8, int(np.ceil(np.log2(hi + 1.0)))))
    return arr * (255.0 / float(2**bits - 1))


def decode_gray(data_or_path: bytes | str | Path, size: int) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Decode a PNG/JPEG (any mode Pillow reads) or a DICOM file (:mod:`gdgan.data.dicom`) to an
    anti-aliased ``size``² uint8 grayscale array.

    Returns (image, source mode, source (width, height)); raises DecodeError with the reason.
    """
    from PIL import Image

    if not isinstance(data_or_path, bytes):
        from gdgan.data.dicom import DicomError, decode_dicom, is_dicom

        if is_dicom(data_or_path):  # same contract, for adapters that meet DICOM files
            try:
                return decode_dicom(data_or_path, size)
            except DicomError as exc:
                raise DecodeError(str(exc)) from None
    try:
        src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
        with Image.open(src) as im:
            im.load()
            mode, wh = im.mode, im.size
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                g = Image.fromarray(_high_depth_to_float(np.asarray(im)), mode="F")
            elif mode == "L":
                g = im
            elif mode in ("LA", "La"):
                g = im.getchannel("L")
            elif mode in ("RGBA", "RGBa", "PA", "P"):
                # Alpha in NIH files is opaque; drop it rather than blend with an arbitrary background.
                g = im.convert("RGBA").convert("RGB").convert("L")
            else:
                g = im.convert("L")
            out = g.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
            arr = np.asarray(out)
    except FileNotFoundError:
        raise DecodeError("file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"cannot decode ({type(exc).__name__}: {str(exc)[:120]})") from None
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr), mode, wh


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


# --------------------------------------------------------------------------------------------
# parallel, resumable decoding
# --------------------------------------------------------------------------------------------
def _chunk_file(work: Path, k: int) -> Path:
    return work / f"chunk-{k:06d}.npz"


def _decode_chunk(task: tuple[int, list[str], list[str], int, str]) -> int:
    """Worker: decode one chunk and write it atomically to the work folder; returns the chunk no."""
    k, names, paths, size, work = task
    cpu0 = time.thread_time()
    imgs = np.zeros((len(paths), size, size), np.uint8)
    ok = np.zeros(len(paths), bool)
    modes: list[str] = []
    wh = np.zeros((len(paths), 2), np.int32)
    err_idx: list[int] = []
    err_msg: list[str] = []
    for i, p in enumerate(paths):
        try:
            imgs[i], mode, wh[i] = decode_gray(p, size)
            ok[i] = True
            modes.append(mode)
        except DecodeError as exc:
            err_idx.append(i)
            err_msg.append(str(exc))
            modes.append("")
    dest = _chunk_file(Path(work), k)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}.tmp.npz")
    np.savez(
        tmp,
        images=imgs,
        ok=ok,
        names=np.array(names, dtype=str),
        modes=np.array(modes, dtype=str),
        wh=wh,
        err_idx=np.array(err_idx, dtype=np.int64),
        err_msg=np.array(err_msg, dtype=str),
        cpu_s=np.float64(time.thread_time() - cpu0),
    )
    os.replace(tmp, dest)
    return k


def _load_chunk(path: Path, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """A finished chunk, or None when absent/unreadable/for other files (then it is redone)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception:
        return None
    if data.get("names") is None or data["names"].tolist() != list(names):
        return None
    return data


def _csv_digest(csv_path: Path) -> str:
    h = hashlib.sha256()
    with open(csv_path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def default_workers() -> int:
    from gdgan.settings import get_settings

    return get_settings().ingest_workers or os.cpu_count() or 1


def _run_chunks(tasks: list[tuple[int, list[str], list[str], int, str]], workers: int) -> Iterator[int]:
    """Decode chunks on a thread pool; yields chunk numbers as they finish.

    Threads, not processes: Pillow releases the GIL while it inflates a PNG and while it
    resamples (a Python thread kept running with < 30 ms pauses while another decoded 4096²
    PNGs), so threads scale with cores like a process pool, without its costs — no worker
    start-up that re-imports the caller's main module, no ``if __name__ == "__main__"`` guard
    needed in user scripts, and it works inside daemonic processes (Celery prefork children).
    """
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield _decode_chunk(t)
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="nih-decode")
    try:
        futures = [pool.submit(_decode_chunk, t) for t in tasks]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def decode_images(
    names: Sequence[str],
    paths: Sequence[str],
    size: int,
    report: IngestReport,
    *,
    work_key: str,
    lines: Sequence[int] | None = None,
    workers: int | None = None,
    resume_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopFlag | None = None,
    keep_work: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``paths`` (PNG, JPEG, DICOM, ...) to ``(N, size, size)`` uint8 plus a kept mask.

    The machinery every adapter shares: a thread pool decodes chunks into a resumable work folder
    ``<resume_dir>/<work_key>-<size>px`` (the caller keys it by what defines its input), a file
    that cannot be decoded is reported in ``report.corrupt_files`` and masked out, progress is
    published as ``ingest`` records, and ``should_stop`` raises :class:`IngestCancelled`.
    """
    if resume_dir is None:
        from gdgan.settings import get_settings

        resume_dir = get_settings().cache_dir / "ingest"
    work = Path(resume_dir) / f"{work_key}-{size}px"
    work.mkdir(parents=True, exist_ok=True)
    names = list(names)
    nw = max(1, int(workers) if workers else default_workers())
    report.workers = nw
    total = len(names)
    starts = list(range(0, total, chunk_size))
    report.chunks = len(starts)
    chunk_names = [names[s : s + chunk_size] for s in starts]
    todo = []
    done = 0
    for k, s in enumerate(starts):
        if _load_chunk(_chunk_file(work, k), chunk_names[k]) is not None:
            report.chunks_reused += 1
            done += len(chunk_names[k])
        else:
            todo.append((k, chunk_names[k], list(paths[s : s + chunk_size]), size, str(work)))

    def emit(step: int, message: str = "") -> None:
        if progress is None:
            return
        el = time.monotonic() - t_decode
        rate = (step - resumed) / el if el > 0 and step > resumed else None
        eta = (total - step) / rate if rate else None
        progress(Progress("ingest", step, total, images_per_s=rate, eta_s=eta, message=message))

    resumed, t_decode = done, time.monotonic()
    emit(done, f"{report.chunks_reused} chunks resumed" if report.chunks_reused else "decoding")
    chunks = _run_chunks(todo, nw)
    try:
        for k in chunks:
            done += len(chunk_names[k])
            emit(done)
            if should_stop is not None and should_stop():
                raise IngestCancelled(f"ingest cancelled after {done} of {total} images; rerun to resume")
    finally:
        chunks.close()  # cancel queued chunks and wait for running ones now, not at garbage collection

    # Assemble in input order from the chunk files.
    images = np.empty((total, size, size), np.uint8)
    keep = np.zeros(total, bool)
    modes: Counter[str] = Counter()
    for k, s in enumerate(starts):
        data = _load_chunk(_chunk_file(work, k), chunk_names[k])
        if data is None:  # vanished between decode and assembly: redo in-process
            _decode_chunk((k, chunk_names[k], list(paths[s : s + chunk_size]), size, str(work)))
            data = _load_chunk(_chunk_file(work, k), chunk_names[k])
            assert data is not None
        n = len(chunk_names[k])
        images[s : s + n] = data["images"]
        keep[s : s + n] = data["ok"]
        modes.update(m for m in data["modes"].tolist() if m)
        report.decode_cpu_s += float(data.get("cpu_s", 0.0))
        report.non_square += int(np.sum(data["ok"] & (data["wh"][:, 0] != data["wh"][:, 1])))
        for i, msg in zip(data["err_idx"].tolist(), data["err_msg"].tolist()):
            where = f"line {lines[s + i]}: " if lines is not None else ""
            report.corrupt_files.add(f"{where}{names[s + i]}: {msg}")
    report.source_modes = dict(sorted(modes.items()))
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return images, keep


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
