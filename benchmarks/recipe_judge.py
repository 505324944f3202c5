"""The judge of ``bench_recipe.py``: a small CNN trained on real phantom training images only.

Heads: [is_female, is_AP, Cardiomegaly from the true CTR > 0.5] (BCE) and the CTR (MSE).
Its 64-d penultimate features give the distances: relative FD and k-NN precision / recall
(Kynkäänniemi et al. 2019, k = 3). Cheap enough to score a generator every 50 steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from gdgan.data.dataset import ImageDataset
from gdgan.labels import FINDINGS
from gdgan.models.gdgan import from_uint8
from gdgan.training.data import resize_uint8
from scipy import linalg
from sklearn.metrics import roc_auc_score
from torch import nn

CARDIO = FINDINGS.index("Cardiomegaly")
GROUPS = ((0, 0), (0, 1), (1, 0), (1, 1))


class JudgeNet(nn.Module):
    def __init__(self, w: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.Conv2d(4 * w, 4 * w, 3, 1, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(4 * w, 4)  # female, AP, cardio, ctr

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return self.head(f), f


@dataclass
class Judge:
    net: JudgeNet
    size: int
    real_train_feats: np.ndarray  # features of a real training subset (the FD reference)
    test_feats: np.ndarray
    ceiling: dict[str, float] = field(default_factory=dict)

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x in [-1, 1] (B, 1, S, S) -> (probs (B, 3), ctr (B,), features (B, 64))."""
        self.net.eval()
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        # quantise like a stored image so the judge sees what a user gets
        x = from_uint8(((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
        out, f = self.net(x)
        return torch.sigmoid(out[:, :3]).numpy(), out[:, 3].numpy(), f.numpy().astype(np.float64)


def _targets(ds: ImageDataset, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ctr = np.asarray(ds.labels["gt_ctr"])[idx].astype(np.float32)
    y = np.c_[ds.general()[idx], (ctr > 0.5).astype(np.float32)]
    return y, ctr


def train_judge(
    ds: ImageDataset, train_idx: np.ndarray, test_idx: np.ndarray, size: int, epochs: int = 8, seed: int = 0
) -> Judge:
    """Train on real training images at ``size``; the ceiling is read on real test images."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = JudgeNet()
    x_all = torch.from_numpy(resize_uint8(np.asarray(ds.images[train_idx]), size))[:, None]
    y_np, ctr_np = _targets(ds, train_idx)
    y_all, ctr_all = torch.from_numpy(y_np), torch.from_numpy(ctr_np)
    pos = float(y_all[:, 2].mean())
    pos_weight = torch.tensor([1.0, 1.0, (1 - pos) / max(pos, 1e-3)])
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=gen)
        for s in range(0, len(order), 64):
            rows = order[s : s + 64]
            x = from_uint8(x_all[rows])
            dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
            x = torch.roll(x, (dy, dx), dims=(2, 3))
            out, _ = net(x)
            loss = F.binary_cross_entropy_with_logits(out[:, :3], y_all[rows], pos_weight=pos_weight)
            loss = loss + 20.0 * F.mse_loss(out[:, 3], ctr_all[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    x_test = from_uint8(torch.from_numpy(resize_uint8(np.asarray(ds.images[test_idx]), size))[:, None])
    rng = np.random.default_rng(seed)
    sub = rng.choice(len(train_idx), size=min(len(train_idx), len(test_idx)), replace=False)
    judge = Judge(net.eval(), size, np.zeros((0, 64)), np.zeros((0, 64)))
    p, ctr, f_test = judge.run(x_test)
    _, _, f_train = judge.run(from_uint8(x_all[torch.from_numpy(sub)]))
    judge.real_train_feats, judge.test_feats = f_train, f_test
    y_test, ctr_test = _targets(ds, test_idx)
    judge.ceiling = {
        "acc_gender": float(np.mean((p[:, 0] > 0.5) == (y_test[:, 0] > 0.5))),
        "acc_view": float(np.mean((p[:, 1] > 0.5) == (y_test[:, 1] > 0.5))),
        "auc_cardio": float(roc_auc_score(y_test[:, 2], p[:, 2]))
        if 0 < y_test[:, 2].sum() < len(y_test)
        else float("nan"),
        "ctr_pos": float(np.mean(ctr[y_test[:, 2] > 0.5] > 0.5)),
        "ctr_neg": float(np.mean(ctr[y_test[:, 2] < 0.5] > 0.5)),
        "ctr_mae": float(np.mean(np.abs(ctr - ctr_test))),
        "rel_fd": 1.0,
    }
    return judge


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(covmean)))


def _radii(x: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    r_real, r_fake = _radii(real, k), _radii(fake, k)
    d = np.sqrt(((fake[:, None] - real[None]) ** 2).sum(-1))  # (n_fake, n_real)
    precision = float(np.mean((d <= r_real[None]).any(1)))
    recall = float(np.mean((r_fake[None] >= d.T).any(1)))
    return precision, recall


def _distances(judge: Judge, feats: np.ndarray) -> dict[str, float]:
    n = min(len(feats), len(judge.test_feats), len(judge.real_train_feats))
    test, ref = judge.test_feats[:n], judge.real_train_feats[:n]
    rel = frechet(feats[:n], test) / max(frechet(ref, test), 1e-9)
    prec, rec = precision_recall(test, feats[:n])
    return {"rel_fd": rel, "precision": prec, "recall": rec}


def _requests(nz: int, n: int, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, nz, generator=g)
    general = torch.tensor([GROUPS[i % 4] for i in range(n)], dtype=torch.float32)
    return z, general


def _acc(p: np.ndarray, general: torch.Tensor) -> dict[str, float]:
    g = general.numpy() > 0.5
    return {
        "acc_gender": float(np.mean((p[:, 0] > 0.5) == g[:, 0])),
        "acc_view": float(np.mean((p[:, 1] > 0.5) == g[:, 1])),
    }


def _dev(m: nn.Module) -> torch.device:
    return next(m.parameters()).device


@torch.no_grad()
def score_stage1(judge: Judge, g1: nn.Module, nz: int, n: int) -> dict[str, float]:
    z, general = _requests(nz, n)
    d = _dev(g1)
    p, _, f = judge.run(g1(z.to(d), general.to(d)).float().cpu())
    return _acc(p, general) | _distances(judge, f)


@torch.no_grad()
def score_stage2(judge: Judge, g1: nn.Module, g2: nn.Module, nz: int, n: int) -> dict[str, float]:
    z, general = _requests(nz, n)
    d = _dev(g1)
    x1 = g1(z.to(d), general.to(d))
    no = torch.zeros(n, len(FINDINGS), device=d)
    yes = no.clone()
    yes[:, CARDIO] = 1
    p_no, ctr_no, f_no = judge.run(g2(x1, no).float().cpu())
    p_yes, ctr_yes, _ = judge.run(g2(x1, yes).float().cpu())
    y = np.r_[np.ones(n), np.zeros(n)]
    return (
        _acc(p_no, general)
        | _distances(judge, f_no)
        | {
            "auc_cardio": float(roc_auc_score(y, np.r_[p_yes[:, 2], p_no[:, 2]])),
            "ctr_pos": float(np.mean(ctr_yes > 0.5)),
            "ctr_neg": float(np.mean(ctr_no > 0.5)),
        }
    )
