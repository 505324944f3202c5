"""NIH's on-disk format: PNGs and ``Data_Entry_2017.csv``, as NIH ships them."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gdgan.data.dataset import ImageDataset
from gdgan.data.nih import REQUIRED_CSV_COLUMNS
from gdgan.data.phantom.config import FRAME_MM, PhantomError
from gdgan.labels import decode_findings

# --------------------------------------------------------------------------------------------
# NIH on-disk format
# --------------------------------------------------------------------------------------------
NIH_CSV_NAME = "Data_Entry_2017.csv"
# NIH's own file has these columns: the adapter's required ones plus the original geometry.
NIH_CSV_COLUMNS = (
    *REQUIRED_CSV_COLUMNS,
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
)
NIH_IMAGES_PER_FOLDER = 10_000


def write_nih_format(
    dataset: ImageDataset,
    out_dir: str | Path,
    layout: str = "flat",
    write_size: int | None = None,
    per_folder: int = NIH_IMAGES_PER_FOLDER,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write PNGs and ``Data_Entry_2017.csv`` as NIH ships them; returns the CSV path.

    ``layout="flat"`` puts every PNG in ``out_dir/images/``; ``layout="nih"`` uses NIH's
    ``images_001/images/...`` folders of ``per_folder`` files. ``write_size`` upscales (bicubic)
    so an ingest benchmark decodes and resizes realistic amounts of data.
    """
    from PIL import Image

    from gdgan.imaging import to_png_bytes

    if layout not in ("flat", "nih"):
        raise PhantomError(f"layout must be 'flat' or 'nih', got {layout!r}")
    if write_size is not None and not 8 <= write_size <= 4096:
        raise PhantomError(f"write_size must be within [8, 4096], got {write_size}")
    if per_folder < 1:
        raise PhantomError(f"per_folder must be >= 1, got {per_folder}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lab = dataset.labels
    n = len(dataset)
    side = write_size or dataset.size
    spacing = FRAME_MM / side
    csv_path = out / NIH_CSV_NAME
    with csv_path.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(NIH_CSV_COLUMNS)
        for i in range(n):
            name = str(lab["image_index"][i])
            sub = "images" if layout == "flat" else f"images_{i // per_folder + 1:03d}/images"
            folder = out / sub
            if i == 0 or (layout == "nih" and i % per_folder == 0):
                folder.mkdir(parents=True, exist_ok=True)
            img = np.asarray(dataset.images[i])
            if write_size is not None and write_size != img.shape[0]:
                big = Image.fromarray(img).resize((write_size, write_size), Image.Resampling.BICUBIC)
                img = np.asarray(big)
            (folder / name).write_bytes(to_png_bytes(img))
            age = int(lab["age"][i])
            wr.writerow(
                [
                    name,
                    decode_findings(lab["findings"][i]),
                    int(lab["follow_up"][i]),
                    int(lab["patient_id"][i]),
                    age if age >= 0 else "",
                    "F" if int(lab["gender"][i]) == 1 else "M",
                    "AP" if int(lab["view"][i]) == 1 else "PA",
                    side,
                    side,
                    f"{spacing:.6f}",
                    f"{spacing:.6f}",
                ]
            )
            if progress is not None and (i + 1) % 256 == 0:
                progress(i + 1, n)
    if progress is not None:
        progress(n, n)
    return csv_path
