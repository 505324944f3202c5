""" "Does it learn?" — label fidelity of generated images, judged by a real-trained classifier.

A small CNN is trained on the *real* training split to predict [is_female, is_AP,
Cardiomegaly]. Then:

- **general fidelity**: stage-1 (and ACGAN) samples made for given (gender, view) are labelled
  by that classifier; we report its accuracy on the samples next to its accuracy on real test
  images (the ceiling);
- **detail fidelity**: from the *same* stage-1 images (same z and general labels), stage 2 is
  asked once with Cardiomegaly and once without; the classifier's Cardiomegaly score should be
  higher for the former. We report the ROC AUC separating the two sets (0.5 = stage 2 ignores
  the finding) and the paired win rate. Same for ACGAN with the same z and general labels.

The classifier is deliberately small (seconds on a CPU): it has to recognise the labels, not
compete with the evaluation's VGG-19.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from gdgan.data.dataset import ImageDataset
from gdgan.labels import FINDINGS
from gdgan.models.gdgan import from_uint8
from gdgan.training.data import resize_uint8
from gdgan.training.sampling import GROUPS, LoadedGenerator

CARDIO = FINDINGS.index("Cardiomegaly")
TARGETS = ("gender=F", "view=AP", "Cardiomegaly")


class LabelNet(nn.Module):
    """x (B, 1, S, S) -> logits (B, 3): [is_female, is_AP, Cardiomegaly]."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, 2, 1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
            nn.Conv2d(4 * w, 4 * w, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, len(TARGETS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _targets(ds: ImageDataset, idx: np.ndarray) -> np.ndarray:
    return np.concatenate([ds.general()[idx], ds.detail()[idx][:, CARDIO : CARDIO + 1]], axis=1)


@torch.no_grad()
def predict(net: nn.Module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """uint8 (N, S, S) -> probabilities (N, 3)."""
    net.eval()
    out = []
    for s in range(0, len(images), batch):
        x = from_uint8(torch.from_numpy(np.ascontiguousarray(images[s : s + batch]))[:, None])
        out.append(torch.sigmoid(net(x)).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(TARGETS)), np.float32)


def train_label_classifier(
    images: np.ndarray, targets: np.ndarray, epochs: int = 8, batch: int = 64, seed: int = 0, lr: float = 2e-3
) -> LabelNet:
    """Train :class:`LabelNet` on real uint8 images (N, S, S) and targets (N, 3)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = LabelNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x_all = torch.from_numpy(np.ascontiguousarray(images))[:, None]
    y_all = torch.from_numpy(targets.astype(np.float32))
    # the rare finding is up-weighted so the classifier does not ignore it
    pos = float(y_all[:, 2].mean())
    pos_weight = torch.tensor([1.0, 1.0, (1 - pos) / max(pos, 1e-3)])
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=gen)
        for s in range(0, len(order), batch):
            rows = order[s : s + batch]
            x = from_uint8(x_all[rows])
            if torch.rand((), generator=gen) < 0.5:  # tiny augmentation: ±2 px shifts
                dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
                x = torch.roll(x, (dy, dx), dims=(2, 3))
            loss = F.binary_cross_entropy_with_logits(net(x), y_all[rows], pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


@dataclass
class FidelityReport:
    real: dict[str, float]  # classifier on real test images: acc gender/view, AUC Cardiomegaly
    stage1: dict[str, float] | None = None  # accuracy of requested gender/view on stage-1 samples
    stage2: dict[str, float] | None = None  # AUC / win rate: with vs without Cardiomegaly
    acgan: dict[str, float] | None = None  # accuracy (general) and AUC / win rate (Cardiomegaly)
    n_samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _general_accuracy(probs: np.ndarray, general: np.ndarray) -> dict[str, float]:
    pred = probs[:, :2] > 0.5
    return {
        "acc_gender": float(np.mean(pred[:, 0] == (general[:, 0] > 0.5))),
        "acc_view": float(np.mean(pred[:, 1] == (general[:, 1] > 0.5))),
    }


def _detail_separation(p_with: np.ndarray, p_without: np.ndarray) -> dict[str, float]:
    y = np.r_[np.ones(len(p_with)), np.zeros(len(p_without))]
    return {
        "auc_cardiomegaly": float(roc_auc_score(y, np.r_[p_with, p_without])),
        "paired_win_rate": float(np.mean(p_with > p_without)),
        "mean_score_with": float(np.mean(p_with)),
        "mean_score_without": float(np.mean(p_without)),
    }


def balanced_requests(gen: LoadedGenerator, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(z, general) with the four (gender, view) groups equally often, deterministic."""
    rng = np.random.default_rng(seed)
    z = rng.random((n, gen.nz), dtype=np.float32)
    general = np.array([GROUPS[i % 4] for i in range(n)], dtype=np.float32)
    return z, general


def measure(
    ds: ImageDataset,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    gdgan: LoadedGenerator | None = None,
    acgan: LoadedGenerator | None = None,
    n_samples: int = 400,
    epochs: int = 8,
    seed: int = 0,
    classifier: LabelNet | None = None,
) -> FidelityReport:
    """Train the real-data classifier (unless given) and score the generators' samples."""
    size = (gdgan or acgan).size if (gdgan or acgan) else ds.size
    real_train = resize_uint8(np.asarray(ds.images[train_idx]), size)
    real_test = resize_uint8(np.asarray(ds.images[test_idx]), size)
    net = classifier or train_label_classifier(real_train, _targets(ds, train_idx), epochs=epochs, seed=seed)
    y_test = _targets(ds, test_idx)
    p_test = predict(net, real_test)
    real = _general_accuracy(p_test, y_test[:, :2])
    if 0 < y_test[:, 2].sum() < len(y_test):
        real["auc_cardiomegaly"] = float(roc_auc_score(y_test[:, 2], p_test[:, 2]))
    report = FidelityReport(real=real, n_samples=n_samples)
    no = np.zeros((n_samples, len(FINDINGS)), np.float32)
    yes = no.copy()
    yes[:, CARDIO] = 1.0
    if gdgan is not None:
        z, general = balanced_requests(gdgan, n_samples, seed)
        x1 = gdgan.generate(z, general, no, stage=1)
        report.stage1 = _general_accuracy(predict(net, x1), general)
        if 2 in gdgan.stages and gdgan.acgan is None and gdgan.g2 is not None:
            x2_no = gdgan.generate(z, general, no, stage=2)
            x2_yes = gdgan.generate(z, general, yes, stage=2)
            report.stage2 = _detail_separation(predict(net, x2_yes)[:, 2], predict(net, x2_no)[:, 2])
            report.stage2 |= {
                f"stage2_{k}": v for k, v in _general_accuracy(predict(net, x2_no), general).items()
            }
    if acgan is not None:
        z, general = balanced_requests(acgan, n_samples, seed)
        a_no = acgan.generate(z, general, no)
        a_yes = acgan.generate(z, general, yes)
        report.acgan = _general_accuracy(predict(net, a_no), general) | _detail_separation(
            predict(net, a_yes)[:, 2], predict(net, a_no)[:, 2]
        )
    return report


# --- command line: the figures in docs/notes/training.md ------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train GDGAN and ACGAN on a phantom with a preset, measure fidelity, write grids + JSON.

    ``python -m gdgan.training.fidelity --preset demo --n 4000 --out docs/img``
    """
    import argparse
    import json
    import tempfile
    import time
    from pathlib import Path

    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.data.splits import patient_split
    from gdgan.imaging import grid_png_bytes
    from gdgan.store.local import LocalStore
    from gdgan.training.api import train
    from gdgan.training.sampling import load_generator

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--n", type=int, default=4000, help="phantom images")
    ap.add_argument("--prevalence", type=float, default=0.2, help="phantom Cardiomegaly prevalence")
    ap.add_argument("--set", action="append", default=[], help="config override key=value")
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--out", type=Path, default=None, help="folder for grids + fidelity.json")
    ap.add_argument("--store", type=Path, default=None)
    args = ap.parse_args(argv)
    from gdgan.training.presets import get_config, parse_overrides

    overrides = parse_overrides(args.set)
    size = get_config(args.preset, overrides).size
    ds = make_phantom(
        PhantomConfig(n=args.n, size=size, seed=0, prevalence={"Cardiomegaly": args.prevalence})
    )
    split = patient_split(ds.labels["patient_id"], 0)
    store = LocalStore(args.store or Path(tempfile.mkdtemp(prefix="gdgan-fid-")))
    times: dict[str, float] = {}
    ids: dict[str, str] = {}
    speed: dict[str, float] = {}
    for kind in ("gdgan", "acgan"):
        t0 = time.perf_counter()
        r = train(
            kind,
            ds,
            store=store,
            preset=args.preset,
            overrides=overrides,
            device="cpu",
            progress=lambda p: (
                print(p.phase, p.step, p.total, f"{p.images_per_s or 0:.0f} img/s", flush=True)
                if p.step % 25 == 0
                else None
            ),
        )
        times[kind] = round(time.perf_counter() - t0, 1)
        ids.update(r.model_ids)
    for k in ("stage1", "stage2", "acgan"):
        speed[k] = store.manifest(ids[k]).meta["images_per_s"]
    gd, ac = (
        load_generator(store, ids["gdgan"], device="cpu"),
        load_generator(store, ids["acgan"], device="cpu"),
    )
    rep = measure(ds, split.train, split.test, gd, ac, n_samples=args.samples)
    result = {
        "preset": args.preset,
        "overrides": overrides,
        "n_images": args.n,
        "n_train": len(split.train),
        "wall_s": times,
        "images_per_s": speed,
        "fidelity": rep.to_dict(),
        "model_ids": ids,
    }
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        _write_grids(ds, split.test, gd, ac, out, grid_png_bytes)
        (out / "fidelity.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


def _write_grids(
    ds: ImageDataset,
    test_idx: np.ndarray,
    gd: LoadedGenerator,
    ac: LoadedGenerator,
    out: Any,
    grid_png_bytes: Any,
) -> None:
    """real / stage-1 / stage-2 / ACGAN grids: rows = (gender, view) groups, ± Cardiomegaly."""
    from gdgan.labels import GENDERS, VIEWS

    k = 4
    real, caps = [], []
    gen, view = ds.labels["gender"][test_idx], ds.labels["view"][test_idx]
    card = ds.labels["findings"][test_idx, CARDIO]
    for g, v in GROUPS:
        for c in (0, 1):
            rows = test_idx[(gen == g) & (view == v) & (card == c)][: k // 2]
            for r in rows:
                real.append(resize_uint8(np.asarray(ds.images[r : r + 1]), gd.size)[0])
                caps.append(f"{GENDERS[g]}/{VIEWS[v]}" + (" Cardiomegaly" if c else ""))
    (out / "grid_real.png").write_bytes(grid_png_bytes(np.stack(real), caps, ncol=k, scale=2))
    rng = np.random.default_rng(123)
    z = rng.random((len(GROUPS) * k, gd.nz), dtype=np.float32)
    general = np.array([GROUPS[i // k] for i in range(len(z))], dtype=np.float32)
    no = np.zeros((len(z), len(FINDINGS)), np.float32)
    yes = no.copy()
    yes[:, CARDIO] = 1
    cap = [f"{GENDERS[int(a)]}/{VIEWS[int(b)]}" for a, b in general]
    (out / "grid_stage1.png").write_bytes(
        grid_png_bytes(gd.generate(z, general, no, 1), cap, ncol=k, scale=2)
    )
    s2 = np.concatenate([gd.generate(z, general, no, 2), gd.generate(z, general, yes, 2)])
    cap2 = [c + " none" for c in cap] + [c + " Cardiomegaly" for c in cap]
    order = np.argsort(np.r_[np.arange(len(z)) * 2, np.arange(len(z)) * 2 + 1], kind="stable")
    (out / "grid_stage2.png").write_bytes(
        grid_png_bytes(s2[order], [cap2[i] for i in order], ncol=2 * k // 2 * 2, scale=2)
    )
    a = np.concatenate([ac.generate(z, general, no), ac.generate(z, general, yes)])
    (out / "grid_acgan.png").write_bytes(
        grid_png_bytes(a[order], [cap2[i] for i in order], ncol=2 * k // 2 * 2, scale=2)
    )


if __name__ == "__main__":
    main()
