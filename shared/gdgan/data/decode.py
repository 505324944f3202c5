"""Decoding radiographs into ``size``² uint8 arrays: one image (any PNG/JPEG/DICOM mode to 8-bit
grayscale, anti-aliased resize), and many in parallel, resumably.

Decoding 112k PNGs of 1024² is the slow part of an ingest. It is done once, by a pool of decoder
threads (Pillow releases the GIL while it inflates and resamples), each writing finished chunks to
a work folder; an interrupted ingest resumes by skipping the chunks already there. A file that
cannot be decoded is counted in the report and masked out: one broken file never loses an hour.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from gdgan.data.ingest_report import IngestReport
from gdgan.progress import Cancelled, Progress, ProgressCallback, StopFlag

CHUNK_SIZE = 256  # images per worker task and per resumable work file
PIPELINE_VERSION = 1  # part of the work-folder key: bump when decoding changes


class IngestCancelled(Cancelled):
    """``should_stop`` asked the ingest to stop; finished chunks stay in the work folder."""


class DecodeError(ValueError):
    """One image file cannot be read or decoded."""


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
