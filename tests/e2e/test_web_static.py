"""Checks on the web client's files that need no browser (fast; run with the unit tests).

- the finding list the page offers is the label schema's, in the same order;
- the client works offline: no CDN or other external URL is loaded by any file;
- every module the page imports exists (a typo would otherwise be a blank page).
"""

from __future__ import annotations

import json
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


def _js_array(source: str, name: str) -> list[str]:
    m = re.search(rf"export const {name} = (\[.*?\]);", source, re.S)
    assert m, f"{name} not found"
    return json.loads(re.sub(r",\s*\]", "]", m.group(1)))


def test_findings_match_label_schema() -> None:
    src = (WEB / "js" / "labels.js").read_text()
    assert _js_array(src, "FINDINGS") == list(FINDINGS)
    assert f'export const NO_FINDING = "{NO_FINDING}";' in src


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
