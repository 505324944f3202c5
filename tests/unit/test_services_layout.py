"""One place for one thing, checked on the source: the generator does not import the gateway,
the shipped ``services`` package holds no test helper, and the dead code the review found is gone.
(Each assertion fails on the code before the clean-up.)"""

from __future__ import annotations

import ast
from pathlib import Path

import gdgan.schemas
import gdgan.training.sampling
from gdgan import catalog

import services.common.http

SERVICES = Path(services.common.http.__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_generator_does_not_import_the_gateway() -> None:
    used = set().union(*(_imports(p) for p in (SERVICES / "generator").rglob("*.py")))
    assert not {m for m in used if m.startswith("services.gateway")}


def test_no_test_helper_in_the_shipped_services_package() -> None:
    assert not (SERVICES / "testing.py").exists()


def test_dead_code_is_gone() -> None:
    assert not hasattr(gdgan.training.sampling, "describe")
    assert not hasattr(services.common.http, "token_setting")
    assert not hasattr(services.common.http, "clear_error")
    assert not hasattr(gdgan.schemas, "ErrorBody")


def test_one_alias_set() -> None:
    """Sampling and the gateway's request validation use gdgan.catalog's aliases, not their own."""
    assert not hasattr(gdgan.training.sampling, "ALIASES")
    assert not hasattr(gdgan.schemas, "MODEL_ALIASES")
    req = gdgan.schemas.GenerateRequest(model="stage2")
    assert req.model in catalog.ALIASES and catalog.ALIASES["stage2"] == "gdgan-stage2"


def test_one_print_tables() -> None:
    """gdgan demo prints Tables 1-2 with gdgan evaluate's function (there were two copies)."""
    from gdgan.cli import demo, evaluate

    assert demo.print_tables is evaluate.print_tables
