"""The finding classifier of the paper's evaluation (VGG-19) and a compact CPU variant.

Both share one interface: ``Classifier.trunk`` maps a (B, 1, H, W) image in [-1, 1] to a
feature vector and ``Classifier.head`` to logits (one for a finding classifier, K for the
domain network). Training is Adam + BCE-with-logits (or cross-entropy for K classes), with the
model selected by validation AUC (accuracy for K classes) and early stopping. Augmentation is
small shifts and rotations only: a horizontal flip would move the heart to the wrong side.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gdgan.evaluation.auc import AUCError, roc_auc
from gdgan.evaluation.presets import ClassifierConfig
from gdgan.progress import Progress, ProgressCallback, StopFlag, never_stop, no_progress


class ClassifierError(ValueError):
    pass


class Classifier(nn.Module):
    """trunk (image -> features) + linear head (features -> logits)."""

    def __init__(self, trunk: nn.Module, n_features: int, n_outputs: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.n_outputs = n_outputs
        self.trunk = trunk
        self.head = nn.Linear(n_features, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


def _vgg19_trunk(hidden: int = 256) -> tuple[nn.Module, int]:
    """torchvision's VGG-19 (batch-norm variant, config "E") convolution stack, 1-channel input.

    Built with torchvision's own ``make_layers(cfgs["E"])`` and VGG's initialisation; the
    ImageNet head (7×7 pooling, 25088→4096→4096, 120M parameters) is sized for 224 px, while at
    64–128 px the last feature map is 2×2–4×4, so the head is a global average pool and a
    512→``hidden`` layer.
    """
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["E"], batch_norm=True)
    first = features[0]
    assert isinstance(first, nn.Conv2d)
    features[0] = nn.Conv2d(1, first.out_channels, kernel_size=3, padding=1)
    trunk = nn.Sequential(
        features,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(512, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
    )
    for m in trunk.modules():  # torchvision VGG's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return trunk, hidden


def conv_pool_blocks(width: int, n_blocks: int = 4) -> tuple[list[nn.Module], int]:
    """``n_blocks`` conv-BN-ReLU-maxpool blocks on one input channel, doubling the width each
    block: the small CPU-fast trunk shared by the classifier and the harness judge.
    Returns the layers (so callers append their own pooling head) and the output channels."""
    layers: list[nn.Module] = []
    c_in = 1
    for k in range(n_blocks):
        c_out = width * 2**k
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        c_in = c_out
    return layers, c_in


def _small_trunk(width: int = 16) -> tuple[nn.Module, int]:
    """Four conv-BN-ReLU-pool blocks and a global pool: ~100k parameters, fast on a CPU."""
    layers, c_out = conv_pool_blocks(width)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2)), c_out


def build_classifier(kind: str, n_outputs: int = 1, width: int = 16) -> Classifier:
    if kind == "vgg19":
        trunk, nf = _vgg19_trunk()
    elif kind == "small":
        trunk, nf = _small_trunk(width)
    else:
        raise ClassifierError(f"unknown classifier kind {kind!r}; known: vgg19, small")
    return Classifier(trunk, nf, n_outputs, kind)


def to_input(images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (B, H, W) -> float (B, 1, H, W) in [-1, 1]."""
    t = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    return (t.to(device).float().unsqueeze(1) / 127.5) - 1.0


def random_shift_rotate(
    x: torch.Tensor, max_shift: float, max_rot_deg: float, gen: torch.Generator
) -> torch.Tensor:
    """Random small translation and rotation per image (border padding); never a flip."""
    b = x.shape[0]
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(max_rot_deg)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2 * max_shift)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    ).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


@torch.inference_mode()
def predict_logits(
    model: Classifier, images: np.ndarray, batch_size: int = 256, device: str = "cpu"
) -> np.ndarray:
    """Logits (N,) for one output, (N, K) for K outputs."""
    model.eval().to(device)
    out = []
    for i in range(0, len(images), batch_size):
        out.append(model(to_input(images[i : i + batch_size], device)).float().cpu())
    if not out:
        return np.zeros((0,) if model.n_outputs == 1 else (0, model.n_outputs), dtype=np.float32)
    y = torch.cat(out).numpy()
    return y[:, 0] if model.n_outputs == 1 else y


@torch.inference_mode()
def embed(model: Classifier, images: np.ndarray, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    model.eval().to(device)
    out = [
        model.embed(to_input(images[i : i + batch_size], device)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.head.in_features), np.float32)


@dataclass
class TrainedClassifier:
    model: Classifier
    best_epoch: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    cancelled: bool = False
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.model.kind,
            "best_epoch": self.best_epoch,
            "best_val_score": self.best_score,
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 2),
            "history": self.history,
        }


def _val_score(model: Classifier, x_val: np.ndarray, y_val: np.ndarray, device: str) -> float:
    logits = predict_logits(model, x_val, device=device)
    if model.n_outputs == 1:
        try:
            return roc_auc(y_val, logits)
        except AUCError:
            return float("nan")
    return float((logits.argmax(1) == y_val).mean())


def train_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: ClassifierConfig,
    seed: int,
    n_outputs: int = 1,
    device: str = "cpu",
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
    phase: str = "classifier",
) -> TrainedClassifier:
    """Train and return the model of the epoch with the best validation score.

    ``n_outputs == 1``: binary ``y`` in {0, 1}, BCE-with-logits, selection by validation AUC.
    ``n_outputs > 1``: class indices, cross-entropy, selection by validation accuracy.
    """
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise ClassifierError("images and labels differ in length")
    if len(x_train) == 0:
        raise ClassifierError("empty training set")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_classifier(config.kind, n_outputs, config.width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(x_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    total = steps_per_epoch * config.epochs
    y_t = torch.as_tensor(np.asarray(y_train))
    best_state = copy.deepcopy(model.state_dict())
    best_score, best_epoch, bad = -math.inf, -1, 0
    history: list[dict[str, float]] = []
    stopped_early = cancelled = False
    step = 0
    for epoch in range(config.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        losses = []
        for b in range(steps_per_epoch):
            if should_stop():
                cancelled = True
                break
            idx = perm[b * config.batch_size : (b + 1) * config.batch_size]
            xb = to_input(x_train[idx.numpy()], device)
            if config.augment:
                xb = random_shift_rotate(xb, config.max_shift, config.max_rotation_deg, gen)
            logits = model(xb)
            if n_outputs == 1:
                loss = F.binary_cross_entropy_with_logits(logits[:, 0], y_t[idx].float().to(device))
            else:
                loss = F.cross_entropy(logits, y_t[idx].long().to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if step % 10 == 0 or b == steps_per_epoch - 1:
                progress(Progress(phase, step, total, {"loss": losses[-1]}, message=f"epoch {epoch + 1}"))
        if cancelled:
            break
        score = _val_score(model, x_val, y_val, device)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_score": score})
        if best_epoch < 0 or score > best_score:
            best_score, best_epoch, bad = score, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= config.patience:
                stopped_early = True
                break
    model.load_state_dict(best_state)
    model.eval()
    return TrainedClassifier(
        model, best_epoch, float(best_score), history, stopped_early, cancelled, time.perf_counter() - t0
    )
