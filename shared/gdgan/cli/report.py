"""``gdgan report tables REPORT``: a stored report's Tables 1–2 and quality figures again.

REPORT is a report id in the store (``--store`` or the settings' store) or a report folder /
``report.json`` on disk (e.g. the demo's ``<home>/store/artifacts/<id>``), so the final run's
figures can be pasted into the docs without the stack running. ``--markdown`` prints them as
markdown; ``--figures DIR`` also copies the report's PNGs there and links them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Read stored evaluation reports.", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def load_report(ref: str, store_url: str | None = None) -> tuple[str, dict[str, Any], dict[str, bytes]]:
    """(report id, report.json, {PNG name: bytes}) from a folder/file on disk or from the store.
    Raises ValueError with a message naming what is wrong."""
    path = Path(ref)
    if path.exists():
        folder = path.parent if path.is_file() else path
        doc = folder / "report.json"
        if not doc.is_file():
            raise ValueError(f"report: {folder} holds no report.json")
        try:
            report = json.loads(doc.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"report: {doc} is not JSON ({exc.msg}, line {exc.lineno})") from None
        pngs = {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}
        return folder.name, report, pngs
    from gdgan.store import StoreError, open_store

    try:
        store = open_store(store_url)
        m = store.manifest(ref)
        if m.kind != "report":
            raise ValueError(f"report: {ref} is a {m.kind!r} artifact, not a report")
        report = store.get_json(ref, "report.json")
        pngs = {name: store.get_bytes(ref, name) for name in sorted(m.files) if name.endswith(".png")}
    except StoreError as exc:
        raise ValueError(f"report: {exc}") from None
    return ref, report, pngs


@app.command("tables")
def tables(
    report: Annotated[str, typer.Argument(help="Report id, or a report folder / report.json on disk.")],
    markdown: Annotated[bool, typer.Option("--markdown", help="Print markdown instead of tables.")] = False,
    figures: Annotated[
        Path | None, typer.Option(help="Copy the report's PNG figures here and link them (markdown).")
    ] = None,
    link_prefix: Annotated[
        str | None, typer.Option(help="Path the markdown links use for --figures (default: the folder).")
    ] = None,
    store: Annotated[str | None, typer.Option(help="Store URL (default: the settings' store).")] = None,
) -> None:
    """Tables 1–2 and the quality-harness figures of a stored report."""
    from gdgan.evaluation.report_markdown import figure_names, report_markdown

    try:
        report_id, doc, pngs = load_report(report, store)
    except ValueError as exc:
        _fail(str(exc))
        return
    links: list[tuple[str, str]] = []
    if figures is not None:
        figures.mkdir(parents=True, exist_ok=True)
        prefix = (link_prefix if link_prefix is not None else str(figures)).rstrip("/")
        for name, caption in figure_names(list(pngs)):
            (figures / name).write_bytes(pngs[name])
            links.append((f"{prefix}/{name}" if prefix else name, caption))
    if markdown:
        typer.echo(report_markdown(doc, report_id, links), nl=False)
        return
    from gdgan.cli.evaluate import print_tables

    print_tables(doc)
    for link, caption in links:
        typer.echo(f"{caption}: {link}")
