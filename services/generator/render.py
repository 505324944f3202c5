"""Encode generated images as the response formats: zip, one labelled grid, or JSON.

The zip is ``gdgan.imageset``'s layout (the same files and labels.csv columns as a generation
job's artifact and ``gdgan sample``), with fixed timestamps so the same request with the same seed
is byte-identical when it runs alone.
"""

from __future__ import annotations

import base64
import json

import numpy as np
from gdgan.imageset import zip_bytes
from gdgan.imaging import grid_png_bytes, to_png_bytes
from gdgan.labels import NIH_SCHEMA, LabelSchema
from gdgan.training.sampling import age_band_codes, caption, general_codes, label_rows


def labels_of(
    general: np.ndarray, detail: np.ndarray, schema: LabelSchema = NIH_SCHEMA
) -> list[dict[str, str]]:
    """Rows by the model's own schema; a general label it lacks is ''."""
    gender, view = general_codes(schema, np.asarray(general))
    ages = age_band_codes(schema, np.asarray(general))
    return label_rows(schema, gender, view, np.asarray(detail), ages)


def as_zip(images: np.ndarray, labels: list[dict[str, str]], model_id: str, seed: int, stage: int) -> bytes:
    return zip_bytes(images, labels, model_id, seed, stage)


def as_grid(images: np.ndarray, labels: list[dict[str, str]]) -> bytes:
    captions = [caption(lab) for lab in labels]
    scale = max(1, 128 // images.shape[-1])
    return grid_png_bytes(images, captions, scale=scale)


def as_json(images: np.ndarray, labels: list[dict[str, str]], model_id: str, seed: int, stage: int) -> bytes:
    items = [{**lab, "png": base64.b64encode(to_png_bytes(img)).decode()} for img, lab in zip(images, labels)]
    return json.dumps({"model_id": model_id, "seed": seed, "stage": stage, "images": items}).encode()
