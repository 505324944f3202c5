"""Supply chain (issue 13): the images install a lock whose every file is pinned by sha256, the lock
covers every runtime dependency within pyproject's ranges, ``make audit`` passes with a clear
'skipped' line when the advisory database cannot be reached, and ``make sbom`` writes a CycloneDX
document naming every locked package and the pinned torch builds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "docker" / "requirements.lock"
SCRIPT = ROOT / "docker" / "supply_chain.py"
ENVS = (
    {"python_full_version": "3.11.11", "python_version": "3.11"},
    {"python_full_version": "3.12.3", "python_version": "3.12"},
)


def locked() -> list[tuple[str, Version, Marker | None, list[str]]]:
    """(name, version, marker, hashes) per requirement block of the lock."""
    out: list[tuple[str, Version, Marker | None, list[str]]] = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        head = block.split("\\")[0].strip()
        if not head or head.startswith("#"):
            continue
        req = Requirement(head)
        (spec,) = req.specifier
        assert spec.operator == "==", head
        out.append(
            (
                req.name.lower(),
                Version(spec.version),
                req.marker,
                re.findall(r"--hash=sha256:([0-9a-f]{64})", block),
            )
        )
    return out


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    rows = locked()
    assert len(rows) > 50
    assert all(hashes for *_, hashes in rows), [n for n, _, _, h in rows if not h]
    names = {n for n, *_ in rows}
    assert not {n for n in names if re.match(r"torch$|torchvision$|nvidia-|triton$|cuda-", n)}
    assert {"setuptools", "wheel"} <= names  # the package is built without build isolation
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for env in ENVS:  # CPU image: python 3.11; CUDA image: python 3.12
        for dep in map(Requirement, deps):
            name = dep.name.lower()
            if name in ("torch", "torchvision"):
                continue
            pins = [
                v
                for n, v, m, _ in rows
                if n == name and (m is None or m.evaluate({**env, "sys_platform": "linux"}))
            ]
            assert len(pins) == 1, (name, env, pins)
            assert dep.specifier.contains(pins[0], prereleases=True), (name, str(pins[0]), str(dep.specifier))


def test_dockerfiles_install_the_lock_with_hashes_and_nothing_unhashed() -> None:
    for name in ("Dockerfile", "Dockerfile.cuda"):
        text = (ROOT / "docker" / name).read_text()
        runs = [" ".join(r.split()) for r in re.findall(r"^RUN (.*?)(?<!\\)$", text, re.M | re.S)]
        pips = [r for r in runs if "pip install" in r]
        assert "COPY docker/requirements.lock docker/requirements.lock" in text, name
        assert any("--require-hashes --no-deps -r docker/requirements.lock" in r for r in pips), name
        assert any("pip install --no-deps --no-build-isolation . && pip check" in r for r in pips), name
        # torch comes by exact version from the PyTorch index; every other install is hashed or --no-deps
        for r in pips:
            assert "--require-hashes" in r or "--no-deps" in r or "torch==${TORCH_VERSION}" in r, (name, r)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_audit_is_skipped_with_a_clear_message_when_the_advisory_database_is_unreachable() -> None:
    res = _run("audit", "--advisory-url", "http://127.0.0.1:9/pypi/pip/json")  # port 9: nothing listens
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("pip-audit skipped: advisory database unreachable"), res.stdout


def test_sbom_is_cyclonedx_with_every_locked_package(tmp_path: Path) -> None:
    out = tmp_path / "sbom.cdx.json"
    res = _run("sbom", "--out", str(out))
    assert res.returncode == 0, res.stderr
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and Version(bom["specVersion"]) >= Version("1.5")
    got = {(c["name"].lower(), c["version"]) for c in bom["components"]}
    want = {(n, str(v)) for n, v, *_ in locked()}
    assert want <= got, sorted(want - got)[:5]
    assert {n for n, _ in got} >= {"torch", "torchvision"}
    purls = [c.get("purl", "") for c in bom["components"]]
    assert all(p.startswith("pkg:pypi/") for p in purls), purls[:3]


@pytest.mark.parametrize("target", ["audit", "sbom", "lock"])
def test_make_targets_exist(target: str) -> None:
    res = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0 and f"docker/supply_chain.py {target}" in res.stdout, res.stdout + res.stderr
    test_deps = re.search(r"^test:(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert test_deps and "audit" in test_deps.group(1).split()  # CI's `make test` audits first
