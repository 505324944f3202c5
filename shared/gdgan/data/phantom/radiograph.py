"""The ``radiograph`` look's own draws and film steps: arms in the field, lettered burnt-in
markers and the edge enhancement of digital films.

Its anatomy switches (heart borders, body outline, bones) live in the renderer, gated on the
look; what is here is drawn from a random stream of its own, so every label, finding, patient
and ground-truth column is the same in every look for the same seed.
"""

from __future__ import annotations

import numpy as np

from gdgan.data.phantom.config import LOOK_NAMES, LOOKS, RADIOGRAPH, FilmLook, PhantomConfig

# 3 × 5 bitmaps of the letters burnt into films at the X-ray room (side markers and the
# technologist's notes: "L", "R", "AP", "PORTABLE", "SUPINE" ...); at 64 px a letter is 3 pixels
# wide, which is what the NIH sample's markers look like after downsampling.
_FONT = {
    "L": ("100", "100", "100", "100", "111"),
    "R": ("110", "101", "110", "101", "101"),
    "A": ("010", "101", "111", "101", "101"),
    "P": ("110", "101", "110", "100", "100"),
    "S": ("011", "100", "010", "001", "110"),
    "U": ("101", "101", "101", "101", "111"),
    "O": ("010", "101", "101", "101", "010"),
    "T": ("111", "010", "010", "010", "010"),
    "E": ("111", "100", "110", "100", "111"),
}
MARKER_WORDS = ("L", "R") * 6 + ("AP", "PA", "SUP")


def _glyph(word: str) -> np.ndarray:
    rows = [" ".join(_FONT.get(ch, ("000",) * 5)[r] for ch in word).replace(" ", "0") for r in range(5)]
    return np.array([[c == "1" for c in row] for row in rows], dtype=np.float32)


GLYPHS = tuple(_glyph(w) for w in MARKER_WORDS)


def look_of(p: dict[str, np.ndarray]) -> FilmLook:
    """The film look of a chunk of parameters (every image of a dataset shares it)."""
    code = p.get("look")
    if code is None or not len(code):
        return LOOKS["calibrated"]
    return LOOKS[LOOK_NAMES[int(code[0])]]


def draw_look_extras(cfg: PhantomConfig, n: int) -> dict[str, np.ndarray]:
    """The look's index and the radiograph look's extra draws (from their own stream: drawing
    them leaves every other parameter of the film as in the other looks)."""
    look = LOOKS[cfg.look]
    rng = np.random.default_rng([cfg.seed, 0x10C, 0xF11])
    t = min(cfg.texture, 1.0)
    arms = rng.random(n) < look.arms_rate * t
    gap = rng.uniform(*RADIOGRAPH.arm_gap, n)
    width = rng.uniform(*RADIOGRAPH.arm_width, n)
    return {
        "look": np.full(n, float(LOOK_NAMES.index(cfg.look))),
        "arm_gap": np.where(arms, gap, np.nan),
        "arm_w": width,
        "marker_word": rng.integers(0, len(GLYPHS), n).astype(np.float64),
        "marker_grey": rng.uniform(*RADIOGRAPH.marker_grey, n),
        # body habitus varies between films: neck width and where the shoulders meet the trunk
        "neck_scale": rng.uniform(*RADIOGRAPH.neck_scale, n),
        "shoulder_shift": rng.uniform(*RADIOGRAPH.shoulder_shift, n),
    }


def sharpen(img: np.ndarray, gain: float, blur121) -> np.ndarray:
    """Unsharp mask: ``img + gain · (img − blur(img))`` with a separable 1-2-1 blur. NIH films
    carry more power at 0.3–0.7 cycles/pixel than a blurred phantom; digital radiographs are
    edge-enhanced by the scanner's processing."""
    soft = blur121(blur121(img, 1, 1.0), 2, 1.0)
    soft -= img
    soft *= -gain
    soft += img
    return soft


def stamp_markers(img: np.ndarray, p: dict[str, np.ndarray], size: int) -> None:
    """Burn lettered markers into the films that have one (in place), at the side-marker spot
    drawn for every look; a letter pixel is ``size / 64`` film pixels."""
    idx = np.flatnonzero(~np.isnan(p["marker_x"]))
    k = max(1, round(size / 64))
    for i in idx:
        g = GLYPHS[int(p["marker_word"][i])]
        h, w = g.shape[0] * k, g.shape[1] * k
        if k > 1:
            g = np.kron(g, np.ones((k, k), dtype=np.float32))
        r0 = int((p["marker_y"][i] + 1.0) * 0.5 * size)
        c0 = int((p["marker_x"][i] + 1.0) * 0.5 * size)
        c0 = min(max(c0 - w // 2, 0), size - w)
        r0 = min(max(r0 - h // 2, 0), size - h)
        region = img[i, r0 : r0 + h, c0 : c0 + w]
        np.maximum(region, g * np.float32(p["marker_grey"][i]), out=region)
