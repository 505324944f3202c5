"""Public entry points: label table with ground truth, chunked rendering, datasets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gdgan.data.dataset import ImageDataset
from gdgan.data.phantom.anatomy import render
from gdgan.data.phantom.config import RENDER_CHUNK_PIXELS, PhantomConfig, PhantomError
from gdgan.data.phantom.labels import _draw_labels, draw_truth
from gdgan.data.phantom.params import _draw_params
from gdgan.data.phantom.texture import Noise


def _pixel_coords(size: int) -> np.ndarray:
    return ((np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0).astype(np.float32)


def render_images(
    params: dict[str, np.ndarray], size: int, seed: int, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """Render all images of a parameter table, chunk by chunk, to uint8 (N, size, size)."""
    n = len(next(iter(params.values())))
    out = np.empty((n, size, size), dtype=np.uint8)
    coords = _pixel_coords(size)
    chunk_n = max(1, RENDER_CHUNK_PIXELS // (size * size))
    for k, start in enumerate(range(0, n, chunk_n)):
        stop = min(n, start + chunk_n)
        rng = np.random.default_rng([seed, 0x9A7, k])  # one stream per chunk: deterministic by seed
        noise = Noise.draw(rng, stop - start, size, size)
        chunk = {key: v[start:stop] for key, v in params.items()}
        img = render(chunk, coords, coords, noise, size)
        np.multiply(img, 255.0, out=img)
        np.rint(img, out=img)
        out[start:stop] = img.astype(np.uint8)
        if progress is not None:
            progress(stop, n)
    return out


# --------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------
GT_COLUMNS = {
    # name in the label table: parameter it comes from (frame units unless noted)
    "gt_rotation": "rot",
    "gt_shift_x": "shift_x",
    "gt_shift_y": "shift_y",
    "gt_effusion_side": "eff_side",
    "gt_effusion_level": "eff_level",
    "gt_nodule_x": "nod_x",
    "gt_nodule_y": "nod_y",
    "gt_nodule_r": "nod_r",
    "gt_mass_x": "mass_x",
    "gt_mass_y": "mass_y",
    "gt_mass_r": "mass_r",
    "gt_pneumothorax_side": "ptx_side",
    "gt_pneumothorax_size": "ptx_size",
    "gt_infiltration_x": "inf_x",
    "gt_infiltration_y": "inf_y",
    "gt_consolidation_x": "cons_x",
    "gt_consolidation_y": "cons_y",
    "gt_pneumonia_x": "pna_x",
    "gt_pneumonia_y": "pna_y",
    "gt_atelectasis_x": "atel_x",
    "gt_atelectasis_y": "atel_y",
    "gt_edema": "edema",
    "gt_fibrosis": "fib",
    "gt_pleural_thickening_side": "pt_side",
    "gt_pleural_thickening": "pt_thick",
    "gt_hernia_r": "hernia_r",
    "gt_breast": "breast",
    "gt_axial_rotation": "axial_rot",
    "gt_low_inspiration": "low_inspiration",
    "gt_devices": "devices",
}


def phantom_labels(
    config: PhantomConfig, findings: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Label table and rendering parameters, without rendering (cheap; used by tests and tools).

    ``findings`` (N, 14) replaces the drawn findings to make *counterfactuals*: every random draw
    has the same shape whatever the labels, so the same seed gives the same patients, anatomy and
    noise, and only what the changed findings control differs (e.g. the same chest with and
    without an effusion). Cardiomegaly is a CTR drawn from the label, so it changes the heart only.
    A counterfactual states what is in the image, so its labels are the truth (no label noise).

    The Cardiomegaly label is text-mined in NIH and wrong at audited rates; here too (see
    :func:`~gdgan.data.phantom.labels.draw_truth`). ``gt_cardiomegaly`` is the truth
    (``gt_ctr > 0.5``), ``label_flipped`` marks the images whose label disagrees with it.
    """
    rng = np.random.default_rng([config.seed, 0x1AB])
    lab = _draw_labels(config, rng)
    if findings is not None:
        findings = np.asarray(findings)
        if findings.shape != lab["findings"].shape:
            raise PhantomError(f"findings must have shape {lab['findings'].shape}, got {findings.shape}")
        lab["findings"] = (findings > 0).astype(np.uint8)
        truth = draw_truth(config.model_copy(update={"label_noise": 0.0}), lab, config.seed)
    else:
        truth = draw_truth(config, lab, config.seed)
    lab["_truth_cm"] = truth["truth"]
    lab["_borderline"] = truth["borderline"]
    params = _draw_params(config, lab, rng)
    for key in ("_patient", "_truth_cm", "_borderline"):
        lab.pop(key)
    lab["gt_cardiomegaly"] = truth["truth"]
    lab["label_flipped"] = truth["flipped"]
    half = config.size / 2.0
    # Widths in pixels of the rendered image (the zoom scales both, the ratio is the CTR).
    thorax_px = 2.0 * params["tw"] * params["zoom"] * half
    lab["gt_ctr"] = params["ctr"].astype(np.float32)
    lab["gt_thorax_width"] = thorax_px.astype(np.float32)
    lab["gt_heart_width"] = (thorax_px * params["ctr"]).astype(np.float32)
    for col, key in GT_COLUMNS.items():
        lab[col] = params[key].astype(np.float32)
    return lab, params


def make_phantom(
    config: PhantomConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    findings: np.ndarray | None = None,
) -> ImageDataset:
    """Generate a phantom dataset: images (N, size, size) uint8 plus NIH-schema labels and gt_* truth.

    ``progress(done, total)`` is called after each rendered chunk; ``findings`` makes a
    counterfactual set (see :func:`phantom_labels`).
    """
    config = config or PhantomConfig()
    labels, params = phantom_labels(config, findings)
    images = render_images(params, config.size, config.seed, progress=progress)
    return ImageDataset(images=images, labels=labels, config={"source": "phantom", **config.model_dump()})
