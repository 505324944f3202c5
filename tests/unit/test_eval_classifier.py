"""Classifiers: shapes, the 1-channel VGG-19, no flips, training selects by validation AUC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gdgan.evaluation.classifier import (
    ClassifierError,
    build_classifier,
    predict_logits,
    random_shift_rotate,
    train_classifier,
)
from gdgan.evaluation.presets import ClassifierConfig


@pytest.mark.parametrize("size", [32, 64])
def test_small_shapes(size: int) -> None:
    m = build_classifier("small").eval()
    assert m(torch.zeros(2, 1, size, size)).shape == (2, 1)
    assert build_classifier("small", 8)(torch.zeros(2, 1, size, size)).shape == (2, 8)


def test_vgg19_is_torchvision_definition_with_grey_input() -> None:
    m = build_classifier("vgg19").eval()
    convs = [l for l in m.trunk[0] if isinstance(l, torch.nn.Conv2d)]  # noqa: E741
    assert len(convs) == 16 and convs[0].in_channels == 1  # VGG-19: 16 conv layers
    with torch.inference_mode():
        assert m(torch.zeros(1, 1, 64, 64)).shape == (1, 1)


def test_augmentation_never_flips() -> None:
    x = torch.zeros(8, 1, 32, 32)
    x[..., :, :10] = 1.0  # bright left side
    gen = torch.Generator().manual_seed(0)
    y = random_shift_rotate(x, 0.04, 5.0, gen)
    assert (y[..., :, :10].mean(dim=(1, 2, 3)) > y[..., :, -10:].mean(dim=(1, 2, 3)) + 0.5).all()
    same = random_shift_rotate(x, 0.0, 0.0, gen)
    assert torch.allclose(same, x, atol=1e-5)


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positives have a bright blob in the centre-left (like a big heart)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.uint8)
    x = rng.integers(0, 60, (n, 32, 32)).astype(np.uint8)
    x[y == 1, 12:22, 8:18] += 120
    return x, y


def test_training_learns_and_is_seeded() -> None:
    torch.set_num_threads(1)
    x, y = _toy(256, 0)
    xv, yv = _toy(96, 1)
    cfg = ClassifierConfig(kind="small", epochs=3, patience=3, batch_size=32, augment=True, lr=3e-3)
    a = train_classifier(x, y, xv, yv, cfg, seed=5)
    assert a.best_score > 0.9 and 1 <= a.best_epoch <= 3
    b = train_classifier(x, y, xv, yv, cfg, seed=5)
    assert np.allclose(predict_logits(a.model, xv), predict_logits(b.model, xv), atol=1e-5)


def test_errors() -> None:
    with pytest.raises(ClassifierError, match="unknown classifier kind 'resnet'"):
        build_classifier("resnet")
    with pytest.raises(ClassifierError, match="differ in length"):
        train_classifier(
            np.zeros((3, 32, 32), np.uint8),
            np.zeros(2),
            np.zeros((1, 32, 32), np.uint8),
            np.zeros(1),
            ClassifierConfig(),
            0,
        )
