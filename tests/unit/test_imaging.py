"""PNG encoding and labelled grids (gdgan.imaging)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from gdgan.imaging import (
    GRID_BACKGROUND,
    ImagingError,
    grid_png_bytes,
    labelled_grid,
    read_png,
    save_png,
    to_png_bytes,
)
from PIL import Image


def _ramp(h: int = 12, w: int = 20) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)


def test_png_round_trip_is_lossless_grayscale() -> None:
    img = _ramp()
    data = to_png_bytes(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "L"
        assert im.size == (20, 12)  # PIL size is (W, H)
        np.testing.assert_array_equal(np.asarray(im), img)


def test_save_png_and_read_png(tmp_path) -> None:
    img = _ramp()
    path = save_png(tmp_path / "sub" / "x.png", img)
    assert path.exists()
    np.testing.assert_array_equal(read_png(path), img)


def test_read_png_converts_rgba_and_16_bit(tmp_path) -> None:
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert read_png(tmp_path / "rgba.png").dtype == np.uint8
    assert read_png(tmp_path / "rgba.png").shape == (4, 5)
    assert int(read_png(tmp_path / "rgba.png")[0, 0]) == 200
    deep = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = read_png(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.shape == (4, 5)
    assert int(out.max()) == 255 and int(out[0, 0]) == 0


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((4, 4), dtype=np.float32), "uint8"),
        (np.zeros((2, 4, 4), dtype=np.uint8), "2-D"),
    ],
)
def test_to_png_bytes_rejects_bad_arrays(bad: np.ndarray, match: str) -> None:
    with pytest.raises(ImagingError, match=match):
        to_png_bytes(bad)


def test_grid_geometry_without_captions() -> None:
    imgs = np.stack([np.full((8, 10), i * 40, dtype=np.uint8) for i in range(5)])
    grid = labelled_grid(imgs, ncol=3, scale=2, pad=1)
    # 3 columns x 2 rows of (20 x 16) tiles, 1-px padding around and between.
    assert grid.size == (1 + 3 * (20 + 1), 1 + 2 * (16 + 1))
    arr = np.asarray(grid)
    # Tile 4 (row 1, col 1) sits at x = 1 + 21, y = 1 + 17 and is filled with 160.
    assert np.all(arr[18 : 18 + 16, 22 : 22 + 20] == 160)
    # The sixth cell is empty: background.
    assert np.all(arr[18:34, 43:63] == GRID_BACKGROUND)


def test_grid_default_columns_is_square_ish() -> None:
    grid = labelled_grid(np.zeros((9, 4, 4), dtype=np.uint8), pad=0)
    assert grid.size == (12, 12)


def test_captions_are_drawn_under_tiles() -> None:
    imgs = np.full((2, 16, 16), 255, dtype=np.uint8)
    plain = labelled_grid(imgs, None, ncol=2, scale=4)
    cap = labelled_grid(imgs, ["M/PA Cardiomegaly", "F/AP No Finding"], ncol=2, scale=4)
    assert cap.size[0] == plain.size[0]
    assert cap.size[1] > plain.size[1]  # a caption band was added
    band = np.asarray(cap)[plain.size[1] - 2 :, :]
    assert (band < 128).sum() > 20  # dark text pixels in the band (tiles and background are white)


def test_long_captions_wrap_to_the_tile_width() -> None:
    imgs = np.full((1, 8, 8), 255, dtype=np.uint8)
    one = labelled_grid(imgs, ["A"], scale=2)
    many = labelled_grid(imgs, ["Cardiomegaly|Effusion|Infiltration|Nodule"], scale=2)
    assert many.size[0] == one.size[0]
    assert many.size[1] > one.size[1]  # several lines


def test_grid_errors_name_the_problem() -> None:
    with pytest.raises(ImagingError, match="captions has 1"):
        labelled_grid(np.zeros((2, 4, 4), dtype=np.uint8), ["x"])
    with pytest.raises(ImagingError, match="scale"):
        labelled_grid(np.zeros((2, 4, 4), dtype=np.uint8), scale=0)
    with pytest.raises(ImagingError, match="empty"):
        labelled_grid(np.zeros((0, 4, 4), dtype=np.uint8))


def test_grid_png_bytes_decodes_to_the_grid() -> None:
    imgs = np.stack([_ramp(6, 6), _ramp(6, 6)])
    data = grid_png_bytes(imgs, ["a", "b"], ncol=2)
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im), np.asarray(labelled_grid(imgs, ["a", "b"], ncol=2)))
