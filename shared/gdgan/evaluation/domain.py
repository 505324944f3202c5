"""The domain network: a CXR classifier trained on real images only, over joint label classes.

When no ImageNet Inception weights are supplied, the inception score, the second FID/KID
variant, label fidelity and the feature-space memorisation audit all use this network. Its
classes are the 8 joint (gender, view, target finding) combinations, so p(y|x) is a proper
softmax over mutually exclusive classes, as the inception score requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gdgan.evaluation.classifier import (
    Classifier,
    TrainedClassifier,
    embed,
    predict_logits,
    train_classifier,
)
from gdgan.evaluation.presets import ClassifierConfig
from gdgan.labels import GENDERS, VIEWS
from gdgan.progress import ProgressCallback, StopFlag, never_stop, no_progress

N_DOMAIN_CLASSES = 8


def joint_class(gender: np.ndarray, view: np.ndarray, target: np.ndarray) -> np.ndarray:
    """class = 4·gender + 2·view + target (codes: gender 0=M 1=F, view 0=PA 1=AP)."""
    return (
        np.asarray(gender).astype(np.int64) * 4
        + np.asarray(view).astype(np.int64) * 2
        + np.asarray(target).astype(np.int64)
    )


def class_names(finding: str) -> list[str]:
    return [f"{g}/{v}/{'+' if t else '-'}{finding}" for g in GENDERS for v in VIEWS for t in (0, 1)]


@dataclass
class DomainNetwork:
    model: Classifier
    finding: str
    trained: TrainedClassifier
    device: str = "cpu"

    def probs(self, images: np.ndarray) -> np.ndarray:
        logits = predict_logits(self.model, images, device=self.device)
        return torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()

    def logits(self, images: np.ndarray) -> np.ndarray:
        return predict_logits(self.model, images, device=self.device).astype(np.float64)

    def features(self, images: np.ndarray) -> np.ndarray:
        return embed(self.model, images, device=self.device).astype(np.float64)

    @staticmethod
    def marginals(p: np.ndarray) -> dict[str, np.ndarray]:
        """P(female), P(AP), P(target) from the joint class probabilities."""
        q = p.reshape(-1, 2, 2, 2)  # gender, view, target
        return {"female": q[:, 1].sum((1, 2)), "ap": q[:, :, 1].sum((1, 2)), "target": q[..., 1].sum((1, 2))}

    def summary(self) -> dict[str, Any]:
        return {"classes": class_names(self.finding), **self.trained.summary()}


def train_domain_network(
    x_train: np.ndarray,
    gender: np.ndarray,
    view: np.ndarray,
    target: np.ndarray,
    x_val: np.ndarray,
    y_val_gender: np.ndarray,
    y_val_view: np.ndarray,
    y_val_target: np.ndarray,
    finding: str,
    config: ClassifierConfig,
    seed: int,
    device: str = "cpu",
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
) -> DomainNetwork:
    y = joint_class(gender, view, target)
    yv = joint_class(y_val_gender, y_val_view, y_val_target)
    tc = train_classifier(
        x_train,
        y,
        x_val,
        yv,
        config,
        seed,
        n_outputs=N_DOMAIN_CLASSES,
        device=device,
        progress=progress,
        should_stop=should_stop,
        phase="domain network",
    )
    return DomainNetwork(tc.model, finding, tc, device)
