"""Label fidelity: does a synthetic image show the labels it was asked for?

A network trained on real images only (the domain network) scores synthetic positives and
synthetic negatives of the target finding: the AUC separating them says whether the GAN draws
the finding, and its accuracy on gender and view says whether the general labels survive.
The same numbers on real test images are the ceiling to compare against.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gdgan.evaluation.auc import AUCError, roc_auc


def label_fidelity(
    finding_score: np.ndarray,
    finding_label: np.ndarray,
    gender_pred: np.ndarray,
    gender_label: np.ndarray,
    view_pred: np.ndarray,
    view_label: np.ndarray,
) -> dict[str, Any]:
    """AUC of the finding score, accuracy of gender / view / both predictions."""
    y = np.asarray(finding_label).astype(bool)
    try:
        auc: float | None = roc_auc(y, finding_score)
    except AUCError:
        auc = None
    g_ok = np.asarray(gender_pred) == np.asarray(gender_label)
    v_ok = np.asarray(view_pred) == np.asarray(view_label)
    return {
        "finding_auc": auc,
        "n_positive": int(y.sum()),
        "n_negative": int((~y).sum()),
        "gender_accuracy": float(g_ok.mean()),
        "view_accuracy": float(v_ok.mean()),
        "general_accuracy": float((g_ok & v_ok).mean()),
    }
