"""Inception score math against hand-computed tables; the weights loader on random Inceptions."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from gdgan.evaluation.inception import (
    InceptionWeightsError,
    PaperInception,
    StandardInception,
    build_imagenet_inception,
    detect_variant,
    imagenet_availability,
    inception_score_from_logits,
    load_imagenet_inception,
    probs_to_logits,
)
from safetensors.torch import load_file, save_file


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
    avail, weights = imagenet_availability(str(path), sha)
    assert avail["available"] is True and weights is not None and weights.variant == "paper"


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


def _random_tf_weights(tmp_path: Path) -> Path:
    """A randomly initialised torch-fidelity Inception saved as safetensors (no download)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    class _Random(fe.FeatureExtractorInceptionV3):  # type: ignore[misc]
        def load_state_dict(self, *_a: object, **_k: object) -> None:
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    torch.manual_seed(0)
    rnd = _Random("inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path=empty)
    path = tmp_path / "tf_inception.safetensors"
    save_file({k: v.contiguous() for k, v in rnd.state_dict().items()}, str(path))
    return path


def test_standard_loader_random_tf_inception(tmp_path: Path) -> None:
    path = _random_tf_weights(tmp_path)
    assert detect_variant(path) == "standard"
    net = load_imagenet_inception("standard", path)
    assert isinstance(net, StandardInception)
    want = load_file(str(path))
    got = net.net.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    with torch.inference_mode():
        out = net(torch.randint(0, 255, (1, 64, 64), dtype=torch.uint8))
    assert out.shape == (1, 1008)


def test_standard_build_leaves_torch_load_alone(tmp_path: Path) -> None:
    """Other threads calling torch.load while the TF Inception is built get their own file.

    The old loader patched torch.load process-wide for the whole construction, so a
    concurrent torch.load returned the Inception state dict instead.
    """
    path = _random_tf_weights(tmp_path)
    avail, weights = imagenet_availability(str(path))
    assert weights is not None and avail["variant"] == "standard"
    other = tmp_path / "other.pt"
    torch.save({"x": torch.arange(3)}, other)
    done = threading.Event()
    wrong: list[object] = []
    calls = [0]

    def load_loop() -> None:
        while not done.is_set():
            got = torch.load(other, weights_only=True)
            calls[0] += 1
            if not (isinstance(got, dict) and list(got) == ["x"]):
                wrong.append(type(got))

    t = threading.Thread(target=load_loop)
    t.start()
    try:
        for _ in range(3):
            build_imagenet_inception(weights)
    finally:
        done.set()
        t.join()
    assert calls[0] > 0 and wrong == []


@pytest.mark.parametrize("kind", ["paper", "standard"])
def test_weights_file_read_once(tmp_path: Path, kind: str) -> None:
    """Availability reads and verifies the file; building the network needs it no more."""
    path = _random_paper_weights(tmp_path)[0] if kind == "paper" else _random_tf_weights(tmp_path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    avail, weights = imagenet_availability(str(path), sha)
    assert avail["available"] and weights is not None and weights.variant == kind
    path.unlink()
    net = build_imagenet_inception(weights)
    assert isinstance(net, PaperInception if kind == "paper" else StandardInception)


def test_unavailable_without_weights() -> None:
    a, w = imagenet_availability("")
    assert a["available"] is False and w is None and "GDGAN_INCEPTION_WEIGHTS" in a["reason"]
