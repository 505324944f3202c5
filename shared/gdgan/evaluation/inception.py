"""Inception score (Salimans et al.): IS = exp(E_x KL(p(y|x) ‖ p(y))) per split, mean ± SD.

The math is torch-fidelity's (``isc_features_to_metric``), applied split by split so that the
per-split scores are kept for Welch's t-test. This module supplies the networks and protocol:

- ``paper``:    torchvision Inception-v3, 1000 ImageNet classes (with bias), ImageNet mean/std
                normalisation — what the authors' code does.
- ``standard``: torch-fidelity's TF-ported Inception, 1008 logits without bias (Salimans' code).
- ``domain``:   the product's own real-trained CXR network over its label classes; used when no
                ImageNet weights are supplied, and always labelled as such.

ImageNet weights are never downloaded: the user supplies a file (``GDGAN_INCEPTION_WEIGHTS``,
safetensors or a plain state-dict file loaded with ``weights_only=True``), checked against an
optional sha256 (``GDGAN_INCEPTION_SHA256``) and against the network's parameter shapes.
The file is read once (:func:`imagenet_availability` returns the verified weights, which
:func:`build_imagenet_inception` turns into the network). Images are replicated to three
channels and resized to 299 × 299.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

Variant = Literal["paper", "standard"]
INCEPTION_SIZE = 299
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InceptionWeightsError(ValueError):
    """The weights file is missing, corrupt, or does not fit the network."""


@dataclass(frozen=True)
class ISResult:
    mean: float
    sd: float
    split_scores: list[float]
    n_images: int
    n_splits: int
    network: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sd_ddof"] = 0  # population SD over splits, as torch-fidelity and Salimans' code
        return d


def inception_score_from_logits(
    logits: np.ndarray | torch.Tensor, splits: int, seed: int = 0, network: str = "unknown"
) -> ISResult:
    """IS per split of the (seeded) shuffled set, then mean and SD over the split scores."""
    x = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"logits must be (N, K>=2), got {tuple(x.shape)}")
    n = x.shape[0]
    if splits < 1 or n < splits:
        raise ValueError(f"cannot cut {n} images into {splits} splits")
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, isc_features_to_metric

    perm = np.random.default_rng(seed).permutation(n)
    x = x[torch.as_tensor(perm)]
    scores = []
    for i in range(splits):
        chunk = x[i * n // splits : (i + 1) * n // splits]
        scores.append(isc_features_to_metric(chunk, splits=1, shuffle=False)[KEY_METRIC_ISC_MEAN])
    return ISResult(
        float(np.mean(scores)), float(np.std(scores)), [float(s) for s in scores], n, splits, network
    )


def probs_to_logits(p: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """log p: softmax(log p) = p for a normalised table (used for hand-built tests)."""
    return np.log(np.clip(np.asarray(p, dtype=np.float64), eps, None))


# --------------------------------------------------------------------------------- weights ---
def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: str | Path, sha256: str = "") -> dict[str, torch.Tensor]:
    """Load a state dict without unpickling arbitrary objects, after checking the sha256."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InceptionWeightsError(f"GDGAN_INCEPTION_WEIGHTS: no file at {p}")
    if sha256:
        got = sha256_of(p)
        if got.lower() != sha256.lower():
            raise InceptionWeightsError(
                f"GDGAN_INCEPTION_SHA256 mismatch for {p}: expected {sha256.lower()}, file has {got}"
            )
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InceptionWeightsError(f"GDGAN_INCEPTION_WEIGHTS: cannot read {p}: {exc}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InceptionWeightsError(f"GDGAN_INCEPTION_WEIGHTS: {p} is not a tensor state dict")
    return sd


def check_shapes(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], what: str) -> None:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise InceptionWeightsError(
            f"{what}: weights do not fit: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}"
        )
    for k, v in expected.items():
        if tuple(v.shape) != tuple(got[k].shape):
            raise InceptionWeightsError(
                f"{what}: parameter {k!r} has shape {tuple(got[k].shape)}, expected {tuple(v.shape)}"
            )


class PaperInception(nn.Module):
    """torchvision Inception-v3 (1000 classes) with ImageNet normalisation, as the authors used."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        aux = any(k.startswith("AuxLogits.") for k in state_dict)
        net = inception_v3(weights=None, aux_logits=aux, init_weights=False, transform_input=False)
        check_shapes(net.state_dict(), state_dict, "paper Inception-v3")
        net.load_state_dict(state_dict)
        self.net = net.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images_u8: torch.Tensor) -> torch.Tensor:
        x = images_u8.float().div(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        return self.net((x - self.mean) / self.std)


def _tf_inception(state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """torch-fidelity's Inception with ``state_dict`` loaded into it, nothing read from disk.

    Its constructor insists on ``torch.load(path, weights_only=False)`` followed by
    ``self.load_state_dict(...)``. It gets an in-memory pickle of an empty dict (written here, so
    unpickling it runs nothing foreign) and a subclass whose ``load_state_dict`` takes the
    verified weights instead: no process-wide patch of ``torch.load`` (which other threads would
    see), no second read of the user's file.
    """
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    class _Verified(fe.FeatureExtractorInceptionV3):  # type: ignore[misc]
        def load_state_dict(self, _placeholder: Any, strict: bool = True, assign: bool = False) -> Any:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    placeholder = io.BytesIO()
    torch.save({}, placeholder)
    placeholder.seek(0)
    return _Verified("inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path=placeholder)


class StandardInception(nn.Module):
    """torch-fidelity's TF-ported Inception; ``logits_unbiased`` (1008) as in Salimans' code."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        try:
            self.net = _tf_inception(state_dict)
        except RuntimeError as exc:
            raise InceptionWeightsError(f"standard Inception: weights do not fit: {exc}") from None

    def forward(self, images_u8: torch.Tensor) -> torch.Tensor:
        x = images_u8.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
        return self.net(x)[0]


def variant_of(state_dict: dict[str, torch.Tensor]) -> Variant:
    """1008-class fc → ``standard`` (TF port), otherwise ``paper``."""
    fc = state_dict.get("fc.weight")
    return "standard" if fc is not None and fc.shape[0] == 1008 else "paper"


@dataclass(frozen=True)
class ImagenetWeights:
    """A weights file read and verified once: its variant and state dict."""

    path: str
    sha256: str
    variant: Variant
    state_dict: dict[str, torch.Tensor] = field(repr=False)


def read_imagenet_weights(path: str | Path, sha256: str = "") -> ImagenetWeights:
    sd = read_state_dict(path, sha256)
    return ImagenetWeights(str(path), sha256, variant_of(sd), sd)


def build_imagenet_inception(weights: ImagenetWeights, variant: Variant | None = None) -> nn.Module:
    """The network for already-read weights (``variant`` defaults to the detected one)."""
    variant = variant or weights.variant
    if variant == "paper":
        return PaperInception(weights.state_dict)
    if variant == "standard":
        return StandardInception(weights.state_dict)
    raise InceptionWeightsError(f"unknown Inception variant {variant!r}; known: paper, standard")


def load_imagenet_inception(variant: Variant, path: str | Path, sha256: str = "") -> nn.Module:
    """Read ``path`` once and build ``variant`` from it."""
    return build_imagenet_inception(read_imagenet_weights(path, sha256), variant)


def detect_variant(path: str | Path) -> Variant:
    return variant_of(read_state_dict(path))


def imagenet_availability(weights: str, sha256: str = "") -> tuple[dict[str, Any], ImagenetWeights | None]:
    """(whether the ImageNet IS can be computed, with the reason when not; the weights, read once)."""
    if not weights:
        return {
            "available": False,
            "reason": "no ImageNet Inception weights supplied (set GDGAN_INCEPTION_WEIGHTS to a "
            "safetensors/state-dict file; nothing is downloaded at run time)",
        }, None
    try:
        w = read_imagenet_weights(weights, sha256)
    except InceptionWeightsError as exc:
        return {"available": False, "reason": str(exc)}, None
    return {"available": True, "variant": w.variant, "path": str(weights), "sha256": sha256 or None}, w


@torch.inference_mode()
def batched_logits(
    net: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, batch_size: int = 32, device: str = "cpu"
) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch_size):
        out.append(net(torch.as_tensor(np.asarray(images[i : i + batch_size])).to(device)).double().cpu())
    return torch.cat(out).numpy()
