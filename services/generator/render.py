"""Encode generated images as the response formats: zip, one labelled grid, or JSON.

The zip is ``gdgan.imageset``'s layout (the same files and labels.csv columns as a generation
job's artifact and ``gdgan sample``), with fixed timestamps so the same request with the same seed
is byte-identical.
"""

from __future__ import annotations

import base64
import json

import numpy as np
from gdgan.imageset import label_dicts, zip_bytes
from gdgan.imaging import grid_png_bytes, to_png_bytes
from gdgan.training.sampling import GenRequest


def as_zip(images: np.ndarray, req: GenRequest, model_id: str, stage: int) -> bytes:
    return zip_bytes(images, req.general, req.detail, model_id, req.seed, stage)


def as_grid(images: np.ndarray, req: GenRequest) -> bytes:
    labels = label_dicts(req.general, req.detail)
    captions = [f"{lab['gender']}/{lab['view']} {lab['finding_labels']}" for lab in labels]
    scale = max(1, 128 // images.shape[-1])
    return grid_png_bytes(images, captions, scale=scale)


def as_json(images: np.ndarray, req: GenRequest, model_id: str, stage: int) -> bytes:
    labels = label_dicts(req.general, req.detail)
    items = [{**lab, "png": base64.b64encode(to_png_bytes(img)).decode()} for img, lab in zip(images, labels)]
    return json.dumps({"model_id": model_id, "seed": req.seed, "stage": stage, "images": items}).encode()
