"""MkDocs hook: the area notes in the nav, and links that point outside the site.

``docs/notes/*.md`` are written by whoever owns an area, often for the README; the site takes
them as they are. So this hook (1) lists every note in the nav, whatever notes exist at build
time, (2) rewrites a note's ``img/x.png`` (README-relative) to the site's ``../img/x.png`` when
only that exists, and (3) turns a link to a repository file outside ``docs/`` (source, Makefile)
into code text, since the site does not publish the source tree. Any other unresolved link stays
as it is, so ``mkdocs build --strict`` fails on it: that is the link check.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s#]+)(#[^)\s]*)?\)")


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("_", " ").capitalize()


def on_config(config: Any) -> Any:
    notes = sorted((DOCS / "notes").glob("*.md"))
    if notes and config.nav is not None:
        config.nav.append({"Area notes": [{_title(p): f"notes/{p.name}"} for p in notes]})
    return config


def rewrite_links(markdown: str, page_src: str) -> str:
    """Return ``markdown`` with the links of page ``page_src`` (docs-relative) made site-safe."""
    here = PurePosixPath(page_src).parent

    def fix(m: re.Match[str]) -> str:
        bang, text, target, anchor = m.group(1), m.group(2), m.group(3), m.group(4) or ""
        if re.match(r"^[a-z]+:", target) or target.startswith("/"):
            return m.group(0)
        resolved = (DOCS / here / target).resolve()
        if resolved.exists() and DOCS in resolved.parents:
            return m.group(0)
        # a README-relative path (img/..., notes/...) that exists under docs/
        for base in (DOCS, ROOT):
            alt = (base / target).resolve()
            if alt.exists() and DOCS in alt.parents:
                rel = (
                    Path(*[".."] * len(here.parts), alt.relative_to(DOCS))
                    if here.parts
                    else alt.relative_to(DOCS)
                )
                return f"{bang}[{text}]({rel.as_posix()}{anchor})"
        # a repository file outside the site: name it, do not link it
        for base in (DOCS / here, ROOT):
            alt = (base / target).resolve()
            if alt.exists() and ROOT in alt.parents and DOCS not in alt.parents:
                return (
                    f"{text} (`{alt.relative_to(ROOT).as_posix()}`)" if text else f"`{alt.relative_to(ROOT)}`"
                )
        return m.group(0)

    out, fence = [], False
    for line in markdown.splitlines(keepends=True):
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        out.append(line if fence else LINK.sub(fix, line))
    return "".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return rewrite_links(markdown, page.file.src_uri)
