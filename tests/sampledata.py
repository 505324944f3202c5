"""Where the real NIH sample lives, importable by name from any test (``conftest`` is not: each
test folder has its own, and which one ``import conftest`` finds depends on collection order)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Team material beside the checkout (not part of the repository); NIH_SAMPLE_DIR overrides it.
NIH_SAMPLE_DEFAULT = REPO_ROOT / ".." / "shared" / "data" / "nih_sample64"


def nih_sample_dir() -> Path:
    """The real 970-image NIH sample (../shared/data/nih_sample64), or skip the test cleanly."""
    path = Path(os.environ.get("NIH_SAMPLE_DIR") or NIH_SAMPLE_DEFAULT).resolve()
    if not (path / "images").is_dir() or not any(path.glob("Data_Entry_2017*.csv")):
        pytest.skip(f"NIH sample not present at {path} (team material beside the checkout)")
    return path
