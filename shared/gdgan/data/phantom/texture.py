"""Random fields and the small numeric helpers the renderer shares: coarse noise grids
interpolated to the image, soft steps, bounding boxes, and the film's texture and exposure."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from gdgan.data.phantom.config import COARSE_GRID, FINE_GRID, LOOKS, TEXTURE_GRID, PhantomConfig
from gdgan.data.phantom.radiograph import look_of, sharpen, stamp_markers

# Exposure of real films (scaled by PhantomConfig.texture): per-image gamma of the film curve
# (log-normal SD), window/level spread, heel-effect gradient across the film (grey levels per
# frame unit), collimation borders and burnt-in side markers.
GAMMA_LOG_SD = 0.18
CONTRAST_SD = 0.12
BRIGHT_SD = 0.04
HEEL_SD = 0.05
COLLIMATION_RATE = 0.35


def _f32(a: np.ndarray | float) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def draw_film(cfg: PhantomConfig, ap: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image exposure and film-handling parameters (drawn for every image, any labels)."""
    n = ap.shape[0]
    t = cfg.texture
    look = LOOKS[cfg.look]
    p: dict[str, np.ndarray] = {}
    p["tex_amp"] = np.full(n, t * look.texture_gain)
    p["sharpen"] = np.full(n, look.sharpen * min(t, 1.0))
    p["blur"] = np.full(n, look.blur * min(t, 1.0))  # the one non-local step of the renderer
    p["gamma"] = np.exp(rng.normal(0.0, GAMMA_LOG_SD, n) * t)
    # NIH films are darker and more contrasted on average than the first phantom's look.
    p["window"] = np.exp(rng.normal(0.0, CONTRAST_SD, n) * t) * (1.0 + look.window_shift * t)
    p["level"] = (rng.normal(0.0, BRIGHT_SD, n) + look.level_shift) * t
    p["heel_x"] = rng.normal(0.0, HEEL_SD, n) * t
    p["heel_y"] = rng.normal(0.0, HEEL_SD, n) * t
    collim = rng.random(n) < COLLIMATION_RATE * min(t, 1.0)
    p["collim"] = np.where(collim, rng.uniform(0.86, 1.05, n), np.nan)  # frame units from centre (x)
    p["collim_y"] = rng.uniform(0.88, 1.05, n)  # (y); beyond 1: no border on that axis
    p["collim_grey"] = np.where(rng.random(n) < 0.8, rng.uniform(0.0, 0.2, n), rng.uniform(0.8, 1.0, n))
    marker = rng.random(n) < look.marker_rate * min(t, 1.0)
    p["marker_x"] = np.where(
        marker, np.where(rng.random(n) < 0.5, -1.0, 1.0) * rng.uniform(0.62, 0.85, n), np.nan
    )
    p["marker_y"] = np.where(marker, rng.uniform(-0.88, -0.6, n), np.nan)
    return p


def _blur121(img: np.ndarray, axis: int, w: float) -> np.ndarray:
    """(1 − w)·img + w·(1-2-1 blur along ``axis``), borders replicated."""
    b = img * 2.0
    if axis == 1:
        b[:, 1:] += img[:, :-1]
        b[:, :-1] += img[:, 1:]
        b[:, 0] += img[:, 0]
        b[:, -1] += img[:, -1]
    else:
        b[:, :, 1:] += img[:, :, :-1]
        b[:, :, :-1] += img[:, :, 1:]
        b[:, :, 0] += img[:, :, 0]
        b[:, :, -1] += img[:, :, -1]
    b *= w / 4.0
    b += (1.0 - w) * img
    return b


def apply_film(
    D: np.ndarray, p: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray, noise: Noise, inv_ew: np.float32
) -> np.ndarray:
    """Attenuation ``D`` -> film grey levels in [0, 1]: response curve, window/level, heel
    effect, gamma, grain, then what the film carries on top (collimation, side markers).
    Works on film coordinates (``xs``, ``ys``), not the patient's."""
    from gdgan.data.phantom.config import ANATOMY as A

    def c(name: str) -> np.ndarray:
        return p[name][:, None, None]

    k1 = A.film_gain * c("contrast") * c("window")
    k0 = 0.5 + (A.film_offset - 0.5) * c("contrast") + c("fog") + c("bright") + c("level")
    img = D * k1
    img += k0
    img += c("heel_x") * xs[None, None, :] + c("heel_y") * ys[None, :, None]
    np.clip(img, 1e-4, 1.0, out=img)
    g = p["gamma"]
    if np.any(np.abs(g - 1.0) > 1e-6):
        np.log(img, out=img)
        img *= c("gamma")
        np.exp(img, out=img)
    # the detector and the downsampling soften every edge a little (a weighted 1-2-1 blur)
    w = float(p["blur"][0]) if len(img) else 0.0
    if w > 0:
        img = _blur121(_blur121(img, 1, w), 2, w)
    # digital films are edge-enhanced (radiograph look)
    gain = float(p["sharpen"][0]) if len(img) and "sharpen" in p else 0.0
    if gain > 0:
        img = sharpen(img, gain, _blur121)
    img += c("grain") * noise.grain
    # collimation: the film outside the collimated field is blank (dark or bright), per axis
    idx = np.flatnonzero(~np.isnan(p["collim"]))
    if idx.size:
        lim_x = p["collim"][idx][:, None, None]
        lim_y = p["collim_y"][idx][:, None, None]
        inside = _s((lim_x - np.abs(xs[None, None, :])) * inv_ew)
        inside = inside * _s((lim_y - np.abs(ys[None, :, None])) * inv_ew)
        grey = p["collim_grey"][idx][:, None, None]
        img[idx] = img[idx] * inside + grey * (1.0 - inside)
    # side marker: a small bright burnt-in block near a top corner (letters in the radiograph look)
    idx = np.flatnonzero(~np.isnan(p["marker_x"]))
    if idx.size and look_of(p).radiograph:
        if img.shape[1] == img.shape[2] == len(xs) == len(ys):  # whole films only
            stamp_markers(img, p, len(xs))
    elif idx.size:
        mx = p["marker_x"][idx][:, None, None]
        my = p["marker_y"][idx][:, None, None]
        block = _s((0.05 - np.abs(xs[None, None, :] - mx)) * inv_ew) * _s(
            (0.07 - np.abs(ys[None, :, None] - my)) * inv_ew
        )
        img[idx] = np.maximum(img[idx], block * 0.97)
    return np.clip(img, 0.0, 1.0, out=img)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
def _interp_matrix(coords: np.ndarray, g: int) -> np.ndarray:
    """(len(coords), g) bilinear weights of a coarse grid spanning [-1.1, 1.1].

    Every chunk of a dataset asks for the same few matrices, so they are built once (cached by
    the coordinates' bytes; read-only so a caller cannot corrupt the cache)."""
    c = np.ascontiguousarray(coords, dtype=np.float32)
    return _interp_matrix_cached(c.tobytes(), g)


@functools.lru_cache(maxsize=64)
def _interp_matrix_cached(coords_bytes: bytes, g: int) -> np.ndarray:
    coords = np.frombuffer(coords_bytes, dtype=np.float32)
    t = (np.asarray(coords, dtype=np.float64) + 1.1) / 2.2 * (g - 1)
    i0 = np.clip(np.floor(t).astype(int), 0, g - 2)
    w1 = np.clip(t - i0, 0.0, 1.0)
    m = np.zeros((len(t), g), dtype=np.float32)
    rows = np.arange(len(t))
    m[rows, i0] = 1.0 - w1
    m[rows, i0 + 1] = w1
    m.flags.writeable = False
    return m


def _upsample(coarse: np.ndarray, my: np.ndarray, mx: np.ndarray) -> np.ndarray:
    """(B, g, g) coarse noise -> (B, H, W) smooth field through separable interpolation."""
    return np.matmul(np.matmul(my, coarse), mx.T)


def _clip01(x: np.ndarray) -> np.ndarray:
    """``np.clip(x, 0, 1)`` for a fresh temporary ``x``: in place through the array method (no
    dispatch, no second temporary); same values."""
    if isinstance(x, np.ndarray):
        return x.clip(0.0, 1.0, out=x)
    return np.clip(x, 0.0, 1.0)


def _s(x: np.ndarray) -> np.ndarray:
    """Soft step: 1 where x >= 0.5, 0 where x <= -0.5, linear between (x in pixels of edge).

    The hottest helper (thousands of calls per dataset, mostly on small boxes): clipped in place
    through the array method, which skips ``np.clip``'s dispatch and a temporary; same values."""
    y = x + 0.5
    if isinstance(y, np.ndarray):
        return y.clip(0.0, 1.0, out=y)
    return np.clip(y, 0.0, 1.0)


@dataclass
class Noise:
    """Random fields for one chunk (drawn up front so a per-pixel loop can reuse them)."""

    texture: np.ndarray  # (B, g, g) lung-marking field
    patch: np.ndarray  # (B, g, g) patchy-opacity field
    fine: np.ndarray  # (B, G, G) reticular field (fibrosis)
    grain: np.ndarray  # (B, H, W) quantum noise, zero mean, unit variance

    @staticmethod
    def draw(rng: np.random.Generator, b: int, h: int, w: int) -> Noise:
        return Noise(
            texture=rng.standard_normal((b, TEXTURE_GRID, TEXTURE_GRID), dtype=np.float32),
            patch=rng.standard_normal((b, COARSE_GRID, COARSE_GRID), dtype=np.float32),
            fine=rng.standard_normal((b, FINE_GRID, FINE_GRID), dtype=np.float32),
            # uniform with unit variance: 3× cheaper to draw than normal, same look as film grain
            grain=(rng.random((b, h, w), dtype=np.float32) - np.float32(0.5)) * np.float32(math.sqrt(12.0)),
        )


def _box_slices(coords: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float) -> slice:
    """Index range of sorted pixel-centre ``coords`` within [min(lo) - margin, max(hi) + margin]."""
    a = int(np.searchsorted(coords, lo.min() - margin, side="left"))
    b = int(np.searchsorted(coords, hi.max() + margin, side="right"))
    return slice(a, max(a, b))
