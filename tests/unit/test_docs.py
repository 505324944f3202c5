"""The documentation site: it builds strictly (links checked), its reference pages are generated
from the code and cover all of it, and the README stays short with working links."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = [sys.executable, "-m", "mkdocs"]


def _hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", ROOT / "docs" / "hooks" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "shared"), str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [*MKDOCS, "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def test_site_builds_strictly_with_every_section(site: Path) -> None:
    for page in [
        "tutorials/laptop",
        "tutorials/own-data",
        "tutorials/docker-compose",
        "tutorials/kubernetes",
        "tutorials/gpu",
        "concepts/science",
        "concepts/data",
        "concepts/evaluation",
        "reference/cli",
        "reference/rest-gateway",
        "reference/rest-generator",
        "reference/settings",
        "reference/python",
        "results/paper",
        "results/benchmarks",
    ]:
        assert (site / page / "index.html").is_file(), page
    # every area note is in the site, and in the nav
    home = (site / "index.html").read_text()
    for note in (ROOT / "docs" / "notes").glob("*.md"):
        assert (site / "notes" / note.stem / "index.html").is_file(), note.name
        assert f"notes/{note.stem}/" in home, f"{note.name} missing from the nav"


def test_cli_reference_names_every_command_and_option(site: Path) -> None:
    import typer
    from gdgan.cli.main import app

    html = (site / "reference" / "cli" / "index.html").read_text()
    hook = _hook("reference")
    for path, cmd in hook._walk(typer.main.get_command(app), ["gdgan"])[1:]:
        assert " ".join(path) in html, path
        ctx = cmd.context_class(cmd)
        for p in cmd.get_params(ctx):
            if p.param_type_name == "option" and not p.hidden and p.name != "help":
                assert p.opts[0] in html, (path, p.opts)


@pytest.mark.parametrize("service", ["gateway", "generator"])
def test_rest_reference_lists_every_route_of_the_openapi_document(site: Path, service: str) -> None:
    mod = importlib.import_module(f"services.{service}.app")
    spec = mod.create_app().openapi()
    html = (site / "reference" / f"rest-{service}" / "index.html").read_text()
    for path, ops in spec["paths"].items():
        for method in ops:
            assert f"{method.upper()} {path}" in html, (method, path)
    for name in spec["components"]["schemas"]:
        assert f'id="{name.lower()}"' in html, name


def test_settings_reference_lists_every_field(site: Path) -> None:
    from gdgan.settings import ENV_PREFIX, Settings

    html = (site / "reference" / "settings" / "index.html").read_text()
    for name in Settings.model_fields:
        assert f"{ENV_PREFIX}{name.upper()}" in html, name


def test_python_reference_renders_the_core_modules(site: Path) -> None:
    index = (site / "reference" / "python" / "index.html").read_text()
    html = "".join(p.read_text() for p in (site / "reference" / "python").glob("*/index.html"))
    for mod in ["gdgan.progress", "gdgan.labels", "gdgan.training.loop", "gdgan.evaluation.auc"]:
        assert f'id="{mod}"' in html, mod
        assert mod in index, mod  # listed on the index page too
    # a docstring, rendered from the code (not copied): the settings model's
    from gdgan.settings import Settings

    assert Settings.__doc__.split("(")[0].strip() in html


def test_strict_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    """The link check is real: the site's own validation settings reject a dead link."""
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# x\n\n[gone](nowhere.md) and [anchor](#no-such-heading)\n")
    (tmp_path / "mkdocs.yml").write_text(
        yaml.safe_dump({"site_name": "t", "strict": True, "validation": cfg["validation"]})
    )
    r = subprocess.run(
        [*MKDOCS, "build", "--strict"], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert r.returncode != 0
    assert "nowhere.md" in r.stderr and "no-such-heading" in r.stderr


def test_link_rewriting_for_notes_and_source_files() -> None:
    links = _hook("links")
    md = (
        "![a](img/web_jobs.png) [src](../../shared/gdgan/progress.py) [x](missing.md)\n```\n[k](img/y)\n```\n"
    )
    out = links.rewrite_links(md, "notes/web.md")
    assert "![a](../img/web_jobs.png)" in out  # README-relative picture, found under docs/img
    assert "src (`shared/gdgan/progress.py`)" in out  # source file: named, not linked
    assert "[x](missing.md)" in out  # left for the strict build to reject
    assert "[k](img/y)" in out  # code blocks untouched


def test_readme_is_short_and_its_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not re.match(r"^[a-z]+:", target):
            assert (ROOT / target).exists(), target
