"""Job records as the API shows them: no server paths (OWASP API3).

An ingest job's params hold the paths the worker reads, resolved to absolute paths on the server
(``/srv/gdgan/imports/nih/Data_Entry_2017.csv``); errors and results can quote them too. The
record in Redis keeps them (the worker needs them); what leaves the gateway has them relative to
the import folder (the form a client posts) and any other server folder named, not spelled out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gdgan.schemas import JobRecord
from gdgan.settings import Settings

SERVER_PATH = "<server path>"


def _roots(settings: Settings, import_root: Path) -> list[tuple[str, str]]:
    """(absolute prefix, what to show instead), longest first so the most specific one wins."""
    named = [(import_root, ""), (settings.data_dir, "<data_dir>"), (settings.cache_dir, "<cache_dir>")]
    out: list[tuple[str, str]] = []
    for root, label in named:
        for form in {str(Path(root)), str(Path(root).resolve())}:
            out.append((form.rstrip("/") + "/", label + "/" if label else ""))
            out.append((form.rstrip("/"), label or "."))
    return sorted(out, key=lambda p: -len(p[0]))


def _text(value: str, roots: list[tuple[str, str]]) -> str:
    for prefix, shown in roots:
        if prefix in value:
            value = value.replace(prefix, shown)
    return value


def _clean(value: Any, roots: list[tuple[str, str]], params: bool) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v, roots, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, roots, params) for v in value]
    if isinstance(value, str):
        out = _text(value, roots)
        # a param still absolute after that points outside every known folder: not ours to show
        return SERVER_PATH if params and out.startswith("/") and len(out) > 1 else out
    return value


def public_record(rec: JobRecord, settings: Settings, import_root: Path) -> JobRecord:
    roots = _roots(settings, import_root)
    return rec.model_copy(
        update={
            "params": _clean(rec.params, roots, params=True),
            "result": _clean(rec.result, roots, params=False),
            "error": _text(rec.error, roots) if rec.error else rec.error,
        }
    )


def public_event(data: str, settings: Settings, import_root: Path) -> str:
    """An event's JSON text with the same folders replaced (a failed ingest's error names its file)."""
    return _clean_json_text(data, _roots(settings, import_root))


def _clean_json_text(data: str, roots: list[tuple[str, str]]) -> str:
    # paths inside JSON strings are escaped only for '/' when a serialiser chooses to; json.dumps
    # does not, so a plain replace on the text is exact for what the workers publish
    return _text(data, roots)
