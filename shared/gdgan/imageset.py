"""A set of generated images with their labels: PNGs plus ``labels.csv``, one layout everywhere.

The generation service's zip responses, the generation job's stored ``synthetic`` artifact and
``gdgan sample``'s output folder all write through :class:`ImageSetWriter`, so a downstream
script reads every one of them the same way:

- files ``img_000000.png`` ... (six digits: a generation job makes at most 100,000 images);
- ``labels.csv`` columns :data:`COLUMNS`: the file, the finding string in the model's label
  schema (NIH: ``Cardiomegaly``, ``A|B``, ``No Finding``), gender M/F and view PA/AP (empty for a
  model without them), and the model id, seed and stage that reproduce the set;
- zip members carry one fixed timestamp, so the same request with the same seed gives the same
  bytes.

:func:`write_synthetic_set` streams a large set to the store chunk by chunk through a temporary
file (never the whole zip in memory), and uploads it with ``put_file`` (a multipart upload on S3).
"""

from __future__ import annotations

import csv
import io
import secrets
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from gdgan.imaging import to_png_bytes
from gdgan.progress import Cancelled, Progress, ProgressCallback, StopFlag, never_stop, no_progress

if TYPE_CHECKING:
    from gdgan.store import ArtifactStore, Manifest
    from gdgan.training.sampling import LoadedGenerator, SampleBatch

COLUMNS: tuple[str, ...] = ("file", "finding_labels", "gender", "view", "model_id", "seed", "stage")
LABELS_FILE = "labels.csv"
ZIP_FILE = "images.zip"
SYNTHETIC_KIND = "synthetic"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip's epoch: archives do not depend on the wall clock


def image_name(i: int) -> str:
    return f"img_{i:06d}.png"


class ImageSetWriter:
    """Numbers the images, hands each PNG to ``put(name, data)`` and collects the label rows;
    ``close`` writes ``labels.csv`` through ``put`` too."""

    def __init__(
        self, put: Callable[[str, bytes], None], model_id: str, seed: int | None, stage: int
    ) -> None:
        self.put = put
        self.model_id, self.seed, self.stage = model_id, seed, stage
        self.count = 0
        self._csv = io.StringIO()
        self._rows: csv.DictWriter[str] | None = None

    def _writer(self, first: dict[str, str] | None) -> csv.DictWriter[str]:
        """The CSV writer, its header fixed by the first row: :data:`COLUMNS`, plus ``age_band``
        after ``view`` for a model with an age band (other models' files keep NIH's columns)."""
        if self._rows is None:
            cols = list(COLUMNS)
            if first is not None and "age_band" in first:
                cols.insert(cols.index("view") + 1, "age_band")
            self._rows = csv.DictWriter(self._csv, fieldnames=cols, lineterminator="\n")
            self._rows.writeheader()
        return self._rows

    def add(self, images: np.ndarray, labels: list[dict[str, str]]) -> None:
        """Append (n, H, W) uint8 images with their label rows (``finding_labels``, ``gender``,
        ``view``, by the model's own label schema: ``gdgan.training.sampling.label_rows``)."""
        for img, lab in zip(images, labels, strict=True):
            name = image_name(self.count)
            self.put(name, to_png_bytes(img))
            self._writer(lab).writerow(
                {"file": name, **lab, "model_id": self.model_id, "seed": self.seed, "stage": self.stage}
            )
            self.count += 1

    def add_batch(self, batch: SampleBatch) -> None:
        self.add(batch.images, batch.label_rows())

    def labels_csv(self) -> bytes:
        self._writer(None)
        return self._csv.getvalue().encode()

    def close(self) -> None:
        self.put(LABELS_FILE, self.labels_csv())


@contextmanager
def zip_writer(fileobj: IO[bytes], model_id: str, seed: int | None, stage: int) -> Iterator[ImageSetWriter]:
    """An :class:`ImageSetWriter` into a zip (stored, not deflated: PNGs are compressed already)."""
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED) as zf:

        def put(name: str, data: bytes) -> None:
            zf.writestr(zipfile.ZipInfo(name, FIXED_TIME), data)

        w = ImageSetWriter(put, model_id, seed, stage)
        yield w
        w.close()


def zip_bytes(
    images: np.ndarray, labels: list[dict[str, str]], model_id: str, seed: int | None, stage: int
) -> bytes:
    """A small set as one zip in memory (the generation service's responses)."""
    buf = io.BytesIO()
    with zip_writer(buf, model_id, seed, stage) as w:
        w.add(images, labels)
    return buf.getvalue()


@contextmanager
def folder_writer(out: Path, model_id: str, seed: int | None, stage: int) -> Iterator[ImageSetWriter]:
    """An :class:`ImageSetWriter` into a folder (``gdgan sample``)."""
    out.mkdir(parents=True, exist_ok=True)
    w = ImageSetWriter(lambda name, data: (out / name).write_bytes(data), model_id, seed, stage)
    yield w
    w.close()


def chunk_seed(seed: int | None, start: int) -> int | None:
    """The seed of the chunk starting at image ``start``: reproducible for a given request."""
    return None if seed is None else (int(seed) * 1_000_003 + start) % (2**32)


def write_synthetic_set(
    store: ArtifactStore,
    gen: LoadedGenerator,
    n: int,
    *,
    finding: Any = None,
    gender: str | None = None,
    view: str | None = None,
    age_band: str | None = None,
    seed: int | None = None,
    stage: int = 2,
    chunk: int = 256,
    config: dict[str, Any] | None = None,
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
    artifact_id: str | None = None,
) -> Manifest:
    """Generate ``n`` images in chunks into a ``synthetic`` artifact (images.zip + labels.csv).

    Memory holds one chunk of images and the label rows, whatever ``n`` is: the zip grows in a
    temporary file and is uploaded from there. Raises :class:`Cancelled` when ``should_stop``
    says so (nothing is committed then). Without a seed one is drawn, so the stored set names the
    seed that reproduces it. ``artifact_id`` (a job's, :func:`gdgan.jobs.records.job_artifact_id`)
    makes it idempotent: an artifact already committed under that id is returned, not redone."""
    if artifact_id is not None and store.exists(artifact_id):
        return store.manifest(artifact_id)
    if seed is None:
        seed = secrets.randbelow(2**31)
    with tempfile.TemporaryDirectory(prefix="gdgan-synthetic-") as tmp:
        zip_path = Path(tmp) / ZIP_FILE
        with open(zip_path, "wb") as f, zip_writer(f, gen.model_id, seed, stage) as w:
            while w.count < n:
                if should_stop():
                    raise Cancelled(f"generation stopped after {w.count} of {n} images")
                k = min(chunk, n - w.count)
                b = gen.sample(
                    k,
                    finding=finding,
                    gender=gender,
                    view=view,
                    seed=chunk_seed(seed, w.count),
                    stage=stage,
                    age_band=age_band,
                )
                w.add_batch(b)
                progress(Progress("generate", w.count, n))
        with store.writer(SYNTHETIC_KIND, artifact_id) as out:
            out.put_file(ZIP_FILE, zip_path)
            out.put_bytes(LABELS_FILE, w.labels_csv())
            return out.commit(
                config=dict(config or {}),
                parents=[gen.model_id],
                meta={
                    "n": n,
                    "seed": seed,
                    "columns": list(COLUMNS),
                    "findings_order": list(gen.schema.findings),
                    "label_schema": gen.schema.to_dict(),
                },
            )
