"""PNG encoding and labelled image grids, shared by training, evaluation and the services.

One place turns uint8 arrays into PNG bytes so that sample grids in reports, the generator's
downloads and the README figures all look the same (same padding, same caption font) and so
that no other module needs to know PIL's API.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Layout of a labelled grid, in output pixels (after scaling the tiles).
GRID_PAD = 2
GRID_BACKGROUND = 255
CAPTION_COLOUR = 0
CAPTION_LINE_GAP = 2


class ImagingError(ValueError):
    """An array that is not a grayscale uint8 image (or stack of them)."""


def _check_image(img: np.ndarray, name: str = "img") -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise ImagingError(f"{name} must be a 2-D (H, W) array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ImagingError(f"{name} must be uint8, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def _check_stack(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ImagingError(f"images must be (N, H, W), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ImagingError(f"images must be uint8, got {arr.dtype}")
    if arr.shape[0] == 0:
        raise ImagingError("images is empty (N = 0)")
    return arr


def to_png_bytes(img: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode one (H, W) uint8 image as an 8-bit grayscale PNG.

    ``compress_level`` 1 by default: PNGs here are small and written in bulk (NIH-format export,
    downloads), where zlib's fast setting is several times quicker for a few percent more bytes.
    """
    arr = _check_image(img)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def save_png(path: str | Path, img: np.ndarray | Image.Image, compress_level: int = 1) -> Path:
    """Write an (H, W) uint8 array (or a PIL image, e.g. a grid) as PNG; parent dirs are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(img, Image.Image):
        img.save(path, format="PNG", compress_level=compress_level)
    else:
        path.write_bytes(to_png_bytes(img, compress_level=compress_level))
    return path


def read_png(path: str | Path) -> np.ndarray:
    """Read a PNG as (H, W) uint8 grayscale (RGB/RGBA converted; 16-bit scaled so its maximum is 255)."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I", "I;16L"):
            arr = np.asarray(im, dtype=np.float64)
            hi = arr.max() if arr.size else 1.0
            return np.clip(np.rint(arr * (255.0 / max(hi, 1.0))), 0, 255).astype(np.uint8)
        return np.asarray(im.convert("L"), dtype=np.uint8)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom - top)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap (also on '|', NIH's label separator) so captions fit under a tile."""
    lines: list[str] = []
    for para in text.split("\n"):
        tokens = para.replace("|", "| ").split(" ")
        cur = ""
        for tok in tokens:
            if not tok:
                continue
            cand = tok if not cur else (cur + tok if cur.endswith("|") else cur + " " + tok)
            if cur and _text_size(draw, cand, font)[0] > width:
                lines.append(cur)
                cur = tok
            else:
                cur = cand
        lines.append(cur)
    return lines


def labelled_grid(
    images: np.ndarray,
    captions: Sequence[str] | None = None,
    ncol: int | None = None,
    scale: int = 1,
    pad: int = GRID_PAD,
) -> Image.Image:
    """Tile (N, H, W) uint8 images into one grayscale PIL image, a caption under each tile.

    ``ncol`` defaults to ceil(sqrt(N)); ``scale`` enlarges tiles by pixel repetition (nearest)
    so 64-px samples stay legible without inventing detail. Captions are wrapped to the tile
    width and drawn with PIL's default font; the caption band has the height of the tallest one.
    """
    arr = _check_stack(images)
    n, h, w = arr.shape
    if captions is not None and len(captions) != n:
        raise ImagingError(f"captions has {len(captions)} entries, images has {n}")
    if scale < 1 or int(scale) != scale:
        raise ImagingError(f"scale must be a positive integer, got {scale!r}")
    if ncol is None:
        ncol = max(1, math.ceil(math.sqrt(n)))
    if ncol < 1:
        raise ImagingError(f"ncol must be >= 1, got {ncol}")
    ncol = min(ncol, n)
    nrow = math.ceil(n / ncol)
    tw, th = w * scale, h * scale

    font = _font()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    wrapped: list[list[str]] = []
    line_h = _text_size(probe, "Ag|", font)[1] + CAPTION_LINE_GAP
    cap_h = 0
    if captions is not None:
        wrapped = [_wrap(probe, str(c), font, tw) for c in captions]
        cap_h = max(len(lines) for lines in wrapped) * line_h + CAPTION_LINE_GAP

    cell_w, cell_h = tw + pad, th + cap_h + pad
    canvas = Image.new("L", (ncol * cell_w + pad, nrow * cell_h + pad), color=GRID_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        r, c = divmod(i, ncol)
        x0, y0 = pad + c * cell_w, pad + r * cell_h
        tile = arr[i]
        if scale > 1:
            tile = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
        canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (x0, y0))
        if wrapped:
            for k, line in enumerate(wrapped[i]):
                draw.text((x0, y0 + th + CAPTION_LINE_GAP + k * line_h), line, fill=CAPTION_COLOUR, font=font)
    return canvas


def grid_png_bytes(
    images: np.ndarray,
    captions: Sequence[str] | None = None,
    ncol: int | None = None,
    scale: int = 1,
    pad: int = GRID_PAD,
) -> bytes:
    """:func:`labelled_grid` encoded as PNG bytes (for downloads and report artifacts)."""
    buf = io.BytesIO()
    labelled_grid(images, captions, ncol=ncol, scale=scale, pad=pad).save(buf, format="PNG")
    return buf.getvalue()
