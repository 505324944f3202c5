"""Encode generated images as the response formats: zip, one labelled grid, or JSON.

Archives carry fixed timestamps so the same request with the same seed is byte-identical.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
from gdgan.imaging import grid_png_bytes, to_png_bytes
from gdgan.labels import NIH_SCHEMA, LabelSchema
from gdgan.training.sampling import caption, general_codes, label_rows

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def labels_of(
    general: np.ndarray, detail: np.ndarray, schema: LabelSchema = NIH_SCHEMA
) -> list[dict[str, str]]:
    """Rows by the model's own schema; a general label it lacks is ''."""
    gender, view = general_codes(schema, np.asarray(general))
    return label_rows(schema, gender, view, np.asarray(detail))


def as_zip(images: np.ndarray, labels: list[dict[str, str]]) -> bytes:
    buf = io.BytesIO()
    rows = ["file,finding_labels,gender,view"]
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, (img, lab) in enumerate(zip(images, labels)):
            name = f"img_{i:03d}.png"
            zf.writestr(zipfile.ZipInfo(name, FIXED_TIME), to_png_bytes(img))
            rows.append(f"{name},{lab['finding_labels']},{lab['gender']},{lab['view']}")
        zf.writestr(zipfile.ZipInfo("labels.csv", FIXED_TIME), "\n".join(rows) + "\n")
    return buf.getvalue()


def as_grid(images: np.ndarray, labels: list[dict[str, str]]) -> bytes:
    captions = [caption(lab) for lab in labels]
    scale = max(1, 128 // images.shape[-1])
    return grid_png_bytes(images, captions, scale=scale)


def as_json(images: np.ndarray, labels: list[dict[str, str]], model_id: str, seed: int, stage: int) -> bytes:
    items = [{**lab, "png": base64.b64encode(to_png_bytes(img)).decode()} for img, lab in zip(images, labels)]
    return json.dumps({"model_id": model_id, "seed": seed, "stage": stage, "images": items}).encode()
