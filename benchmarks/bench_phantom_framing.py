"""Framing spread of phantom looks next to the real NIH sample, by simple image statistics.

Why: at a glance the film look's phantoms were all framed alike while the real films vary
(tilted bedside films, crops at a shoulder, more or less abdomen, dark borders). These crude
per-image statistics (no segmentation) put a number on that spread, side by side in one run:

- ``dark row`` / ``dark col``: centroid of the darkest quarter of the pixels (mostly lung, but
  dark backgrounds and borders count too) — where the lung fields sit;
- ``lung rows``: rows whose central half holds ≥ 30 % of those dark pixels — lung-field height;
- ``body cols``: columns of row 40 brighter than the image's 40th percentile — body width;
- ``tilt``: the angle (degrees, −12…12 in 1.5° steps) that makes the film most mirror-symmetric.

Each column prints mean ± SD over the images. Usage:
    python benchmarks/bench_phantom_framing.py [--nih DIR] [--looks film,radiograph] [--n 970]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.imaging import read_png
from scipy import ndimage

ANGLES = np.arange(-12.0, 12.01, 1.5)


def framing_stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image framing statistics of (N, 64, 64) grey films (see the module docstring)."""
    imgs = images.astype(np.float32)
    _, h, w = imgs.shape
    rows, cols = np.mgrid[0:h, 0:w]
    out: dict[str, list[float]] = {k: [] for k in ("dark row", "dark col", "lung rows", "body cols", "tilt")}
    for img in imgs:
        dark = img <= np.quantile(img, 0.25)
        out["dark row"].append(float(rows[dark].mean()))
        out["dark col"].append(float(cols[dark].mean()))
        frac = dark[:, w // 4 : 3 * w // 4].mean(axis=1)
        out["lung rows"].append(float((frac >= 0.3).sum()))
        out["body cols"].append(float((img[40] > np.quantile(img, 0.4)).sum()))
        best, best_c = 0.0, -2.0
        for a in ANGLES:
            r = ndimage.rotate(img, a, reshape=False, order=1, mode="nearest")[8:-8, 8:-8]
            c = float(np.corrcoef(r.ravel(), r[:, ::-1].ravel())[0, 1])
            if c > best_c:
                best, best_c = -a, c
        out["tilt"].append(best)
    return {k: np.asarray(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nih", default=os.environ.get("NIH_SAMPLE_DIR", "../shared/data/nih_sample64"))
    ap.add_argument("--looks", default="film,radiograph")
    ap.add_argument("--n", type=int, default=970)
    args = ap.parse_args()
    sets: dict[str, np.ndarray] = {}
    nih = Path(args.nih) / "images"
    if nih.is_dir():
        paths = sorted(nih.glob("*.png"))[: args.n]
        sets["NIH sample"] = np.stack([read_png(p) for p in paths])
    else:
        print(f"(no NIH sample at {nih}: phantom rows only)")
    for look in args.looks.split(","):
        sets[f"look={look}"] = make_phantom(PhantomConfig(n=args.n, size=64, seed=0, look=look)).images
    print("| images | dark row | dark col | lung rows | body cols | tilt (°) |")
    print("|---|---|---|---|---|---|")
    for name, imgs in sets.items():
        s = framing_stats(imgs)
        cells = " | ".join(f"{v.mean():.1f} ± {v.std():.1f}" for v in s.values())
        print(f"| {name} ({len(imgs)}) | {cells} |")


if __name__ == "__main__":
    main()
