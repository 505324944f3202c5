"""Every code block of the tutorials runs, so the docs cannot rot.

Each page's ``bash`` blocks run in order in one shell (variables carry from block to block), in a
fresh folder with its own GDGAN_DATA_DIR, with the venv's ``gdgan`` and ``kubectl`` on PATH. A
block that cannot run here is preceded by ``<!-- docs-test: skip — reason -->``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*(?:—|-|:)\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


def blocks(path: Path) -> list[tuple[str, str, str | None]]:
    """(language, code, skip reason or None) for each fenced block of a page."""
    out: list[tuple[str, str, str | None]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i, pending = 0, None
    while i < len(lines):
        m = SKIP.search(lines[i])
        if m:
            pending = m.group(1)
        f = FENCE.match(lines[i])
        if f:
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            out.append((f.group(1), "\n".join(lines[i + 1 : j]), pending))
            pending, i = None, j
        elif lines[i].strip() and not m:
            pending = None
        i += 1
    return out


def test_every_skipped_block_says_why() -> None:
    assert TUTORIALS, "no tutorials found"
    for page in TUTORIALS:
        for lang, code, reason in blocks(page):
            assert lang, f"{page.name}: a block without a language: {code[:60]!r}"
            if reason is not None:
                assert len(reason) > 10, f"{page.name}: a skip without a reason: {code[:60]!r}"


def _runnable(page: Path) -> list[str]:
    return [code for lang, code, reason in blocks(page) if reason is None and lang == "bash"]


def test_pages_without_runnable_blocks_are_the_expected_ones() -> None:
    """Pages whose every block needs Docker, a cluster or a GPU are not run (below), only checked
    for their reasons (above); a tutorial losing its runnable blocks by accident fails here."""
    assert {p.stem for p in TUTORIALS if not _runnable(p)} <= {"docker-compose", "gpu"}


@pytest.mark.integration
@pytest.mark.parametrize("page", [p for p in TUTORIALS if _runnable(p)], ids=lambda p: p.stem)
def test_tutorial_blocks_run(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    runnable = _runnable(page)
    if "jq " in "\n".join(runnable):
        assert shutil.which("jq"), "the tutorials chain ids with jq: install it (Debian: apt-get install jq)"
    env = dict(os.environ, GDGAN_NUM_THREADS="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "shared"), str(ROOT), env.get("PYTHONPATH", "")])
    if page.stem == "own-data":
        env["NIH"] = str(request.getfixturevalue("nih_sample"))  # skips when absent
    # the blocks' relative repository paths (k8s/...) resolve from a link in the fresh folder
    for name in ("k8s", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    script = "set -euo pipefail\n" + "\n".join(
        f"echo '--- block {i}' >&2\n{code}" for i, code in enumerate(runnable)
    )
    r = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540
    )
    assert r.returncode == 0, f"{page.name} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
