"""Checks on the web client's files that need no browser (fast; run with the unit tests).

- the finding list the page offers is the label schema's, in the same order;
- the client works offline: no CDN or other external URL is loaded by any file;
- every module the page imports exists (a typo would otherwise be a blank page).
"""

from __future__ import annotations

import re
from pathlib import Path

from gdgan.labels import FINDINGS, NO_FINDING

# src=/href= to a remote URL, CSS url(), or a module import from a URL
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//"""
    r"""|from\s+["'](?:https?:)?//"""
)
WEB = Path(__file__).resolve().parents[2] / "services" / "gateway" / "web"


def test_no_copy_of_a_finding_list_in_the_page() -> None:
    """Finding names come from the API (each model's/dataset's schema), never from a copy here."""
    src = (WEB / "js" / "labels.js").read_text()
    assert "export const FINDINGS" not in src
    assert f'export const NO_FINDING = "{NO_FINDING}";' in src
    for path in WEB.rglob("*"):
        if path.suffix in {".html", ".js"}:
            text = path.read_text()
            assert sum(f'"{f}"' in text for f in FINDINGS if f != "Cardiomegaly") == 0, path.name


def test_no_external_resources() -> None:
    """Offline: nothing is fetched from another origin (links to documentation text are fine)."""
    for path in WEB.rglob("*"):
        if path.suffix not in {".html", ".js", ".css"}:
            continue
        text = path.read_text()
        bad = re.findall(EXTERNAL, text)
        assert not bad, f"{path.name} loads an external resource: {bad}"


def test_module_imports_resolve() -> None:
    html = (WEB / "index.html").read_text()
    entry = re.findall(r'<script type="module" src="([^"]+)"', html)
    assert entry == ["js/app.js"]
    assert re.search(r'<link rel="stylesheet" href="styles.css">', html)
    for js in (WEB / "js").glob("*.js"):
        for target in re.findall(r'from "(\./[^"]+)"', js.read_text()):
            assert (js.parent / target).is_file(), f"{js.name} imports missing {target}"


def test_every_page_section_exists() -> None:
    html = (WEB / "index.html").read_text()
    for page in ("generate", "jobs", "models", "reports"):
        assert f'id="page-{page}"' in html
        assert f'href="#/{page}"' in html


def test_vendored_libraries_carry_their_licence_and_pinned_version() -> None:
    """uPlot (the page's charts) and axe-core (the browser tests' accessibility checks) are
    vendored from npm, unmodified, each with its licence; the version in the file is the pinned one."""
    e2e = Path(__file__).resolve().parent
    for lib, licence, version, marker in [
        (WEB / "vendor" / "uplot" / "uPlot.esm.js", "MIT License", "1.6.32", "(v1.6.32)"),
        (e2e / "vendor" / "axe-core" / "axe.min.js", "Mozilla Public License", "4.14.1", "axe v4.14.1"),
    ]:
        assert marker in lib.read_text()[:400], lib
        assert licence in (lib.parent / "LICENSE").read_text()[:200], lib.parent
        assert version in (lib.parent / "VERSION").read_text(), lib.parent
    # the page imports the vendored module, not a copy elsewhere
    chart = (WEB / "js" / "chart.js").read_text()
    assert 'from "../vendor/uplot/uPlot.esm.js"' in chart
