"""Make docs/img/phantom_vs_nih.png: phantom radiographs beside real NIH ones, group by group.

Rows are the (gender, view) groups M/PA, M/AP, F/PA, F/AP; in each row the left half shows
phantoms (first without, then with Cardiomegaly) and the right half real NIH images of the same
group from the shared 64-px sample (../shared/data/nih_sample64). Below, a strip shows one
phantom chest without and with each of the 14 findings. Phantom captions give the true CTR and
mark with * the labels that disagree with it (text-mining label noise, as in NIH). Real images
are read at run time and only ever land inside this one composite figure.

Usage: python benchmarks/make_phantom_grid.py [--nih DIR] [--out docs/img/phantom_vs_nih.png]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from gdgan.data.phantom import PhantomConfig, make_phantom, phantom_labels
from gdgan.data.phantom.config import DEFAULT_LOOK
from gdgan.imaging import labelled_grid, read_png
from gdgan.labels import FINDINGS, finding_index
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NIH = ROOT.parent / "shared" / "data" / "nih_sample64"
GROUPS = (("M", "PA"), ("M", "AP"), ("F", "PA"), ("F", "AP"))
PER_CELL = 3  # images per (group, cardiomegaly) cell


def _nih_rows(nih: Path) -> list[dict[str, str]]:
    csvs = sorted(nih.glob("Data_Entry_2017*.csv"))
    if not csvs:
        raise SystemExit(f"no Data_Entry_2017*.csv in {nih}")
    with csvs[0].open(newline="") as fh:
        return list(csv.DictReader(fh))


def _pick_nih(
    rows: list[dict[str, str]], nih: Path, g: str, v: str, cardio: bool, k: int
) -> list[np.ndarray]:
    sel = [
        r
        for r in rows
        if r["Patient Gender"] == g
        and r["View Position"] == v
        and ("Cardiomegaly" in r["Finding Labels"]) == cardio
    ]
    out = []
    for r in sel:
        path = nih / "images" / r["Image Index"]
        if path.exists():
            out.append(read_png(path))
        if len(out) == k:
            break
    return out


def _findings_gallery(seed: int, scale: int, ncol: int, look: str = "calibrated") -> Image.Image:
    """One chest rendered 15 times: no finding, then each of the 14 findings alone."""
    none = {name: 0.0 for name in FINDINGS}
    cfg = PhantomConfig(n=64, size=64, seed=seed, prevalence=none, ap_fraction=0.0, look=look)
    lab, _ = phantom_labels(cfg)
    i = int(np.flatnonzero(lab["gender"] == 0)[0])  # a man on a PA film
    tiles, caps = [make_phantom(cfg).images[i]], ["No Finding"]
    for name in FINDINGS:
        f = np.zeros((cfg.n, len(FINDINGS)), dtype=np.uint8)
        f[i, finding_index(name)] = 1
        tiles.append(make_phantom(cfg, findings=f).images[i])
        caps.append(name.replace("_", " "))
    return labelled_grid(np.stack(tiles), caps, ncol=ncol, scale=scale, pad=3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nih", type=Path, default=DEFAULT_NIH)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "phantom_vs_nih.png")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument(
        "--look", default=DEFAULT_LOOK, help="PhantomConfig.look (default: the frozen default look)"
    )
    args = ap.parse_args()

    ds = make_phantom(
        PhantomConfig(n=3000, size=64, seed=args.seed, prevalence={"Cardiomegaly": 0.25}, look=args.look)
    )
    lab = ds.labels
    card = lab["findings"][:, finding_index("Cardiomegaly")] == 1
    nih_rows = _nih_rows(args.nih) if args.nih.exists() else []

    tiles: list[np.ndarray] = []
    caps: list[str] = []
    blank = np.full((64, 64), 255, dtype=np.uint8)
    for g, v in GROUPS:
        gi, vi = ("M", "F").index(g), ("PA", "AP").index(v)
        for cardio in (False, True):
            idx = np.flatnonzero((lab["gender"] == gi) & (lab["view"] == vi) & (card == cardio))[:PER_CELL]
            for i in idx:
                tiles.append(ds.images[i])
                flip = "*" if lab["label_flipped"][i] else ""
                caps.append(f"phantom {g}/{v}{' CM' if cardio else ''}\nCTR {lab['gt_ctr'][i]:.2f}{flip}")
        for cardio in (False, True):
            real = _pick_nih(nih_rows, args.nih, g, v, cardio, PER_CELL) if nih_rows else []
            for img in real + [blank] * (PER_CELL - len(real)):
                tiles.append(img)
                caps.append(f"NIH {g}/{v}{' CM' if cardio else ''}\n" if real else "(no NIH sample)\n")
    grid = labelled_grid(np.stack(tiles), caps, ncol=4 * PER_CELL, scale=args.scale, pad=3)
    gallery = _findings_gallery(args.seed, args.scale, ncol=4 * PER_CELL, look=args.look)
    # Title bands: which half is which, then the findings strip.
    title_h = 16
    canvas = Image.new("L", (grid.width, grid.height + 2 * title_h + gallery.height), 255)
    canvas.paste(grid, (0, title_h))
    canvas.paste(gallery, (0, grid.height + 2 * title_h))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    half = grid.width // 2
    draw.text(
        (4, 2), "PHANTOM (no CM | Cardiomegaly label; * label disagrees with the true CTR)", fill=0, font=font
    )
    draw.text((half + 4, 2), "REAL NIH ChestX-ray14, 64 px sample (no CM | Cardiomegaly)", fill=0, font=font)
    draw.line([(half - 1, 0), (half - 1, grid.height + title_h)], fill=0, width=2)
    draw.line([(0, grid.height + title_h + 2), (canvas.width, grid.height + title_h + 2)], fill=0, width=2)
    draw.text(
        (4, grid.height + title_h + 4),
        "PHANTOM findings: the same chest (M/PA) without and with each finding (counterfactuals, 64 px)",
        fill=0,
        font=font,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out, format="PNG", optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
