"""Inception score math against hand-computed tables; the weights loader on random Inceptions."""

from __future__ import annotations

import hashlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from gdgan.evaluation.inception import (
    InceptionWeightsError,
    PaperInception,
    StandardInception,
    detect_variant,
    imagenet_availability,
    inception_score_from_logits,
    load_imagenet_inception,
    probs_to_logits,
)
from safetensors.torch import save_file


@pytest.mark.parametrize("k", [2, 3, 10])
def test_uniform_confident_predictions_give_k(k: int) -> None:
    # Each image is certain of one class; classes equally frequent -> p(y) uniform -> IS = k.
    p = np.tile(np.eye(k), (20, 1))
    r = inception_score_from_logits(probs_to_logits(p), splits=1, seed=0)
    assert r.mean == pytest.approx(k, rel=1e-6)
    # shuffled splits of a finite set can only lose classes' balance, never exceed k
    r2 = inception_score_from_logits(probs_to_logits(p), splits=2, seed=0)
    assert all(1.0 < s <= k + 1e-9 for s in r2.split_scores) and r2.n_splits == 2


def test_identical_predictions_give_one() -> None:
    p = np.tile([[0.7, 0.2, 0.1]], (40, 1))
    r = inception_score_from_logits(probs_to_logits(p), splits=4)
    assert r.mean == pytest.approx(1.0, abs=1e-12) and r.sd == pytest.approx(0.0, abs=1e-12)


def test_hand_computed_table() -> None:
    # Two images: p1 = (0.9, 0.1), p2 = (0.3, 0.7); marginal q = (0.6, 0.4).
    p = np.array([[0.9, 0.1], [0.3, 0.7]])
    q = p.mean(0)
    kl = (p * np.log(p / q)).sum(1).mean()
    r = inception_score_from_logits(probs_to_logits(p), splits=1, seed=0)
    assert r.mean == pytest.approx(np.exp(kl), rel=1e-9)
    assert r.n_images == 2 and r.n_splits == 1


def test_split_count_checked() -> None:
    with pytest.raises(ValueError, match="splits"):
        inception_score_from_logits(np.zeros((3, 4)), splits=5)


def _random_paper_weights(tmp_path: Path, aux: bool = False) -> tuple[Path, str]:
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=aux, init_weights=False)
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_paper_loader_random_inception(tmp_path: Path) -> None:
    path, sha = _random_paper_weights(tmp_path)
    assert detect_variant(path) == "paper"
    net = load_imagenet_inception("paper", path, sha)
    assert isinstance(net, PaperInception)
    with torch.inference_mode():
        out = net(torch.randint(0, 255, (2, 64, 64), dtype=torch.uint8))
    assert out.shape == (2, 1000)
    assert imagenet_availability(str(path), sha)["available"] is True


def test_paper_loader_state_dict_file(tmp_path: Path) -> None:
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "inception.pth"
    torch.save(net.state_dict(), path)
    assert isinstance(load_imagenet_inception("paper", path), PaperInception)


def test_loader_rejects_bad_sha_and_shapes(tmp_path: Path) -> None:
    path, _ = _random_paper_weights(tmp_path)
    with pytest.raises(InceptionWeightsError, match="GDGAN_INCEPTION_SHA256 mismatch"):
        load_imagenet_inception("paper", path, "0" * 64)
    from torchvision.models import inception_v3

    small = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=10)
    bad = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(bad))
    with pytest.raises(InceptionWeightsError, match=r"'fc.weight' has shape \(10, 2048\)"):
        load_imagenet_inception("paper", bad)
    with pytest.raises(InceptionWeightsError, match="no file"):
        load_imagenet_inception("paper", tmp_path / "missing.safetensors")


def test_standard_loader_random_tf_inception(tmp_path: Path) -> None:
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    # A randomly initialised torch-fidelity Inception (skip its weight download/load).
    with (
        mock.patch.object(fe.torch, "load", lambda *a, **k: {}),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None),
    ):
        rnd = fe.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path="x"
        )
    path = tmp_path / "tf_inception.safetensors"
    save_file({k: v.contiguous() for k, v in rnd.state_dict().items()}, str(path))
    assert detect_variant(path) == "standard"
    net = load_imagenet_inception("standard", path)
    assert isinstance(net, StandardInception)
    with torch.inference_mode():
        out = net(torch.randint(0, 255, (1, 64, 64), dtype=torch.uint8))
    assert out.shape == (1, 1008)


def test_unavailable_without_weights() -> None:
    a = imagenet_availability("")
    assert a["available"] is False and "GDGAN_INCEPTION_WEIGHTS" in a["reason"]
