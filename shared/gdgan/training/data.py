"""Training batches straight from the in-memory uint8 array (on the GPU when there is one).

The whole training split is one ``(N, 1, S, S)`` uint8 tensor on the training device (a 78k
image 64-px split is 320 MB); a batch is an index gather and a scale to [-1, 1] — no file is
opened and no image decoded per step (the authors' loader decodes a 1024² PNG per image per
step; ``benchmarks/bench_training.py`` measures the difference). Batch indices are drawn
uniformly with replacement from a seeded CPU generator so that resuming replays exactly.

Rare findings (Cardiomegaly is 2.5 % of NIH) give a finding-conditioned phase under one
positive per batch, too few for the generator to practise drawing it. ``with_focus`` makes a
view whose batches draw a fixed share of rows from the rows with one finding (class-balanced
sampling); the rows stay real rows, so the joint (gender, view, findings) labels are kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gdgan.data.dataset import ImageDataset
from gdgan.models.gdgan import from_uint8


def resize_uint8(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
    """(N, H, W) uint8 -> (N, size, size) uint8 with antialiased bilinear resampling, once."""
    if images.shape[1] == size and images.shape[2] == size:
        return np.ascontiguousarray(images)
    out = np.empty((images.shape[0], size, size), dtype=np.uint8)
    for s in range(0, images.shape[0], chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[s : s + chunk])).float()[:, None]
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[s : s + chunk] = y[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def index_digest(idx: np.ndarray) -> str:
    """Fingerprint of the training indices, stored in checkpoints so a resume on other data fails."""
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


@dataclass
class TrainData:
    images: torch.Tensor  # (N, 1, S, S) uint8 on device
    general: torch.Tensor  # (N, 2) float32 on device
    detail: torch.Tensor  # (N, 14) float32 on device
    channels_last: bool = False
    focus: torch.Tensor | None = None  # row indices drawn for the first ``focus_share`` of a batch
    focus_share: float = 0.0

    def with_focus(self, finding_col: int, share: float) -> TrainData:
        """A view (same tensors) whose batches take ``share`` of their rows from the positives of
        detail column ``finding_col``; unchanged when there are none or ``share`` is 0."""
        rows = torch.nonzero(self.detail[:, finding_col] > 0.5).flatten().cpu()
        if share <= 0 or len(rows) == 0:
            return self
        return TrainData(self.images, self.general, self.detail, self.channels_last, rows, share)

    @classmethod
    def from_dataset(
        cls, ds: ImageDataset, idx: np.ndarray, size: int, device: torch.device, channels_last: bool = False
    ) -> TrainData:
        idx = np.asarray(idx, dtype=np.int64)
        imgs = resize_uint8(np.asarray(ds.images[idx]), size)
        return cls(
            images=torch.from_numpy(imgs)[:, None].to(device),
            general=torch.from_numpy(ds.general()[idx]).to(device),
            detail=torch.from_numpy(ds.detail()[idx]).to(device),
            channels_last=channels_last,
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x (n,1,S,S) float in [-1,1], general (n,2), detail (n,14)) for n random rows."""
        rows = torch.randint(0, len(self), (n,), generator=gen)
        if self.focus is not None:
            k = round(self.focus_share * n)
            rows[:k] = self.focus[torch.randint(0, len(self.focus), (k,), generator=gen)]
        rows = rows.to(self.images.device)
        x = from_uint8(self.images[rows])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.general[rows], self.detail[rows]
