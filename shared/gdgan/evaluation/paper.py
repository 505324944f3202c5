"""The paper's own figures (Koga et al., arXiv 1812.01690), shown next to ours in the report."""

from __future__ import annotations

from typing import Any

PAPER_REF = "Koga et al., General-to-Detailed GAN for Infrequent Class Medical Images (arXiv 1812.01690)"

# Table 1: inception score (50,000 images, 10 splits of 5,000).
PAPER_TABLE1: dict[str, dict[str, Any]] = {
    "real": {"mean": 2.1258},
    "acgan": {"mean": 2.7716},
    "gdgan": {"mean": 2.3220},
}

# Table 2: Cardiomegaly classifier (VGG-19), mean AUC over 3 splits (SD where the paper gives it)
# and training-set counts (total / positive) where known.
PAPER_TABLE2: dict[str, dict[str, Any]] = {
    "none": {"auc": 0.8074, "sd": 0.0177, "total": None, "positives": None},
    "undersample": {"auc": 0.7919, "sd": None, "total": None, "positives": None},
    "oversample": {"auc": 0.8084, "sd": None, "total": 100_716, "positives": 14_103},
    "acgan": {"auc": 0.7963, "sd": None, "total": 100_716, "positives": 14_103},
    "gdgan": {"auc": 0.8207, "sd": 0.0066, "total": 100_716, "positives": 14_103},
}
