"""MkDocs hook: the reference pages, generated from the code at build time.

Hand-copied tables of options, routes and settings drift the day someone adds a flag; these pages
are rebuilt from the typer app, the two FastAPI apps' OpenAPI documents, the pydantic settings
model and the package tree (mkdocstrings renders the modules) on every ``mkdocs build``.
"""

from __future__ import annotations

import inspect
import json
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT / "shared", ROOT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

GENERATED_NOTE = "*Generated at build time from the code by `docs/hooks/reference.py`; do not edit.*"
# Python API page: the core library's packages; the CLI and local servers have their own pages.
API_SKIP = ("gdgan.cli", "gdgan.localstack", "gdgan.jobs.celery_app")


def _cell(text: Any) -> str:
    """One markdown table cell: no pipes or newlines from help texts."""
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|").strip()


# ----------------------------------------------------------------------------------------- CLI
# Typer ships its own copy of click (typer._click), so commands are handled by duck typing and
# contexts made from each command's own ``context_class``.
def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "list_commands")


def _walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    out = [(path, cmd)]
    if _is_group(cmd):
        ctx = cmd.context_class(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += _walk(sub, [*path, name])
    return out


def _param_row(ctx: Any, p: Any) -> str:
    """One option or argument: its help record as ``--help`` prints it (default included)."""
    rec = p.get_help_record(ctx)
    if rec is None:  # an argument
        name = getattr(p, "metavar", None) or p.name.upper()
        rec = (name, getattr(p, "help", "") or "")
    req = "yes" if p.required else ""
    return f"| `{_cell(rec[0])}` | {req} | {_cell(rec[1])} |"


def cli_markdown() -> str:
    import typer
    from gdgan.cli.main import app

    root = typer.main.get_command(app)
    lines = ["# CLI reference", "", GENERATED_NOTE, ""]
    lines += [inspect.cleandoc(root.help or ""), "", "Every command takes `--help`.", ""]
    for path, cmd in _walk(root, ["gdgan"]):
        if len(path) == 1:
            continue
        ctx = cmd.context_class(cmd, info_name=" ".join(path))
        lines += [f"## `{' '.join(path)}`", ""]
        if cmd.help:
            lines += [inspect.cleandoc(cmd.help).split("\b")[0].strip(), ""]
        pieces = cmd.collect_usage_pieces(ctx)
        lines += ["```text", f"{' '.join(path)} {' '.join(pieces)}".rstrip(), "```", ""]
        params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
        params = [p for p in params if p.name not in ("help",)]
        if params and not _is_group(cmd):
            lines += ["| option | required | meaning |", "|---|---|---|"]
            lines += [_param_row(ctx, p) for p in params]
            lines.append("")
        if _is_group(cmd):
            subs = cmd.list_commands(ctx)
            lines += ["Commands: " + ", ".join(f"`{' '.join([*path, s])}`" for s in subs) + ".", ""]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- REST
def _schema_name(s: dict[str, Any]) -> str:
    if "$ref" in s:
        return s["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in s:
        return " or ".join(_schema_name(x) for x in s["anyOf"])
    if s.get("type") == "array":
        return f"array of {_schema_name(s.get('items', {}))}"
    if "enum" in s:
        return " / ".join(f"`{v}`" for v in s["enum"])
    return str(s.get("type", "object"))


def openapi_markdown(spec: dict[str, Any], title: str, intro: str) -> str:
    lines = [f"# {title}", "", GENERATED_NOTE, "", intro, ""]
    info = spec.get("info", {})
    lines += [f"OpenAPI {spec.get('openapi', '')}, API version `{info.get('version', '')}`.", ""]
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            lines += [f"## `{method.upper()} {path}`", ""]
            if op.get("summary"):
                lines += [f"**{op['summary']}**", ""]
            if op.get("description"):
                lines += [inspect.cleandoc(op["description"]), ""]
            params = op.get("parameters", [])
            if params:
                lines += ["| parameter | in | type | required | meaning |", "|---|---|---|---|---|"]
                for p in params:
                    lines.append(
                        f"| `{p['name']}` | {p.get('in', '')} | {_cell(_schema_name(p.get('schema', {})))} "
                        f"| {'yes' if p.get('required') else ''} | {_cell(p.get('description', ''))} |"
                    )
                lines.append("")
            body = op.get("requestBody", {}).get("content", {})
            for ctype, c in body.items():
                lines += [f"Request body (`{ctype}`): {_cell(_schema_name(c.get('schema', {})))}.", ""]
            resp = op.get("responses", {})
            if resp:
                lines += ["| status | meaning | body |", "|---|---|---|"]
                for code, r in resp.items():
                    kinds = ", ".join(
                        f"`{ct}` {_schema_name(c.get('schema', {})) if c.get('schema') else ''}".strip()
                        for ct, c in r.get("content", {}).items()
                    )
                    lines.append(f"| {code} | {_cell(r.get('description', ''))} | {_cell(kinds)} |")
                lines.append("")
    schemas = spec.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name, s in sorted(schemas.items()):
            lines += [f"### {name}", ""]
            if s.get("description"):
                lines += [inspect.cleandoc(s["description"]), ""]
            props = s.get("properties", {})
            if props:
                req = set(s.get("required", []))
                lines += ["| field | type | required | default | meaning |", "|---|---|---|---|---|"]
                for k, v in props.items():
                    default = json.dumps(v["default"]) if "default" in v else ""
                    need = "yes" if k in req else ""
                    lines.append(
                        f"| `{k}` | {_cell(_schema_name(v))} | {need} | {_cell(default)} "
                        f"| {_cell(v.get('description', ''))} |"
                    )
                lines.append("")
    return "\n".join(lines) + "\n"


def gateway_markdown() -> str:
    from services.gateway.app import create_app

    return openapi_markdown(
        create_app().openapi(),
        "REST reference: the gateway",
        "The public API (port 8000). The running service serves the same document at "
        "`/openapi.json` and an interactive page at `/docs`. With `GDGAN_API_TOKEN` set, every "
        "`/v1` route needs `Authorization: Bearer <token>`.",
    )


def generator_markdown() -> str:
    from services.generator.app import create_app

    return openapi_markdown(
        create_app().openapi(),
        "REST reference: the generator",
        "The internal generation service (port 8001); the gateway forwards `POST /v1/generate` to it.",
    )


# ------------------------------------------------------------------------------------ settings
def _sections(source: str) -> dict[str, str]:
    """Field name -> the ``# --- section ---`` comment above it in settings.py."""
    out: dict[str, str] = {}
    section = ""
    for line in source.splitlines():
        m = re.match(r"\s*# -+ (\w[\w ]*?) -+", line)
        if m:
            section = m.group(1)
        f = re.match(r"    (\w+)\s*:", line)
        if f and section:
            out[f.group(1)] = section
    return out


_OPS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "min_length": "length ≥", "max_length": "length ≤"}


def _constraint(m: Any) -> str:
    """``Gt(gt=0)`` -> ``> 0``; anything else as pydantic prints it."""
    for k, op in _OPS.items():
        if hasattr(m, k):
            return f"{op} {getattr(m, k)}"
    return str(m)


def settings_markdown() -> str:
    from gdgan import settings as mod
    from pydantic_core import PydanticUndefined

    cls = mod.Settings
    prefix = cls.model_config.get("env_prefix", "")
    sections = _sections(inspect.getsource(mod))
    lines = ["# Settings reference", "", GENERATED_NOTE, ""]
    lines += [inspect.cleandoc(cls.__doc__ or ""), ""]
    lines += [
        f"Every field is an environment variable `{prefix}<FIELD>`. An unknown `{prefix}*` name or a "
        "malformed value stops the process at start-up with a message naming it.",
        "",
    ]
    current = None
    for name, f in cls.model_fields.items():
        sec = sections.get(name, "other")
        if sec != current:
            lines += ["", f"## {sec}", "", "| variable | type | default | constraints | meaning |"]
            lines.append("|---|---|---|---|---|")
            current = sec
        if f.default_factory is not None:
            default = f"computed ({f.default_factory.__name__.strip('_').replace('_', ' ')})"
        elif f.default is PydanticUndefined:
            default = "required"
        else:
            d = f.default
            if hasattr(d, "get_secret_value"):
                default = "empty (secret)" if not d.get_secret_value() else "(secret)"
            else:
                default = "" if d == "" else repr(d)
        ann = str(f.annotation).replace("typing.", "")
        ann = ann if "[" in ann or "|" in ann else getattr(f.annotation, "__name__", ann)
        cons = ", ".join(_constraint(m) for m in f.metadata)
        lines.append(
            f"| `{prefix}{name.upper()}` | {_cell(ann)} | {_cell(default)} | {_cell(cons)} "
            f"| {_cell(f.description or '')} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- Python API
def _api_modules() -> dict[str, list[str]]:
    """Package page -> its modules, from the package tree: one page per subpackage of ``gdgan``
    (``gdgan.training``, ...) and one for the top-level modules (``gdgan``)."""
    import gdgan

    groups: dict[str, list[str]] = {}
    for m in pkgutil.walk_packages(gdgan.__path__, "gdgan."):
        if m.name.startswith(API_SKIP) or m.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        parts = m.name.split(".")
        key = parts[1] if (len(parts) > 2 or m.ispkg) else "gdgan"
        groups.setdefault(key, []).append(m.name)
    # namespace packages (a folder without __init__.py, e.g. gdgan/jobs) are not walked above
    for folder in Path(gdgan.__path__[0]).iterdir():
        if folder.is_dir() and not (folder / "__init__.py").exists():
            for f in folder.glob("*.py"):
                name = f"gdgan.{folder.name}.{f.stem}"
                if not name.startswith(API_SKIP) and not f.stem.startswith("_"):
                    groups.setdefault(folder.name, []).append(name)
    return {k: sorted(v) for k, v in sorted(groups.items(), key=lambda kv: (kv[0] != "gdgan", kv[0]))}


def _api_title(key: str) -> str:
    return "gdgan (top-level modules)" if key == "gdgan" else f"gdgan.{key}"


def python_api_markdown() -> str:
    lines = ["# Python API reference", "", GENERATED_NOTE, ""]
    lines += [
        "The core library `gdgan` (in `shared/gdgan`) needs no server. Its packages and modules are "
        "listed from the package tree and rendered from their docstrings by mkdocstrings.",
        "",
        "| page | modules |",
        "|---|---|",
    ]
    for key, mods in _api_modules().items():
        lines.append(f"| [{_api_title(key)}](python/{key}.md) | {', '.join(f'`{m}`' for m in mods)} |")
    return "\n".join(lines) + "\n"


def python_package_markdown(key: str, mods: list[str]) -> str:
    lines = [f"# {_api_title(key)}", "", GENERATED_NOTE, ""]
    for m in mods:
        ident = m
        if not Path(ROOT, "shared", *m.split(".")[:-1], "__init__.py").exists():
            # a module of a namespace package (gdgan/jobs has no __init__.py): griffe finds it from
            # shared/gdgan (mkdocs.yml's paths) by its short name; the heading keeps the full one
            ident = m.removeprefix("gdgan.")
        lines += [
            f"::: {ident}",
            "    options:",
            "      show_root_heading: true",
            f'      heading: "{m}"',
            "",
        ]
    return "\n".join(lines) + "\n"


PAGES = {
    "reference/cli.md": cli_markdown,
    "reference/rest-gateway.md": gateway_markdown,
    "reference/rest-generator.md": generator_markdown,
    "reference/settings.md": settings_markdown,
    "reference/python.md": python_api_markdown,
}


def _forget_project_modules() -> None:
    """``mkdocs serve`` rebuilds in one process: drop the project's modules so each rebuild
    imports the code as it is now (torch and other libraries stay loaded)."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("gdgan", "services"):
            del sys.modules[name]


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    _forget_project_modules()
    for uri, make in PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    for key, mods in _api_modules().items():
        page = python_package_markdown(key, mods)
        files.append(File.generated(config, f"reference/python/{key}.md", content=page))
    return files


def on_config(config: Any) -> Any:
    """The Python API entry of the nav becomes a section: the index, then one page per package."""
    pages = [{_api_title(k): f"reference/python/{k}.md"} for k in _api_modules()]

    def walk(items: list[Any]) -> None:
        for i, item in enumerate(items):
            if isinstance(item, dict):
                for title, target in item.items():
                    if target == "reference/python.md":
                        items[i] = {title: ["reference/python.md", *pages]}
                    elif isinstance(target, list):
                        walk(target)

    if config.nav is not None:
        walk(config.nav)
    return config
