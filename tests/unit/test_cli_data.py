"""``gdgan data``: phantom, ingest-nih, show, list — JSON on stdout, progress on stderr, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gdgan.cli.data import app
from gdgan.data import phantom
from gdgan.data.dataset import load_dataset
from gdgan.store import open_store
from typer.testing import CliRunner

runner = CliRunner()


def _json(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object, nothing else
    return json.loads(lines[0])


def test_phantom_json_then_show_and_list(tmp_path: Path) -> None:
    store = (tmp_path / "s").as_uri()
    res = runner.invoke(
        app, ["phantom", "--n", "120", "--size", "32", "--seed", "1", "--cardiomegaly-rate", "0.3",
              "--store", store, "--json"],
    )  # fmt: skip
    out = _json(res)
    assert out["id"].startswith("dataset-") and out["n"] == 120 and out["size"] == 32
    assert "phantom" in res.stderr  # the progress bar went to stderr
    ds = load_dataset(open_store(store), out["id"])
    assert ds.images.shape == (120, 32, 32)
    card = int(ds.labels["findings"][:, 1].sum())
    assert out["counts"]["findings"]["Cardiomegaly"] == card
    assert 15 <= card <= 60  # ~30 % of 120, far above NIH's 2.5 %

    shown = _json(runner.invoke(app, ["show", out["id"], "--store", store, "--json", "--split-seed", "2"]))
    assert shown["id"] == out["id"] and shown["n"] == 120
    parts = shown["counts"]
    assert sum(parts[p]["images"] for p in ("train", "val", "test")) == 120
    assert parts["all"]["findings"]["Cardiomegaly"] == card
    assert (
        parts["train"]["gender"]["M"] + parts["val"]["gender"]["M"] + parts["test"]["gender"]["M"]
        == (parts["all"]["gender"]["M"])
    )
    latest = _json(runner.invoke(app, ["show", "latest", "--store", store, "--json"]))
    assert latest["id"] == out["id"]

    table = runner.invoke(app, ["show", out["id"], "--store", store])
    assert table.exit_code == 0 and "Cardiomegaly" in table.stdout and "train" in table.stdout

    listed = _json(runner.invoke(app, ["list", "--store", store, "--json"]))
    assert [d["id"] for d in listed["datasets"]] == [out["id"]]
    plain = runner.invoke(app, ["list", "--store", store])
    assert out["id"] in plain.stdout


def test_ingest_nih_json(tmp_path: Path) -> None:
    ds = phantom.make_phantom(phantom.PhantomConfig(n=30, size=64, seed=2))
    root = tmp_path / "nih"
    csv_path = phantom.write_nih_format(ds, root, layout="nih", per_folder=10)
    store = (tmp_path / "s").as_uri()
    res = runner.invoke(
        app, ["ingest-nih", "--csv", str(csv_path), "--images", str(root), "--size", "32",
              "--workers", "1", "--store", store, "--json"],
    )  # fmt: skip
    out = _json(res)
    assert out["n"] == 30 and out["report"]["ingested"] == 30 and out["report"]["skipped"] == 0
    m = open_store(store).manifest(out["id"])
    assert m.config["source"] == "nih" and m.meta["ingest"]["rows"] == 30
    assert load_dataset(open_store(store), out["id"]).images.shape == (30, 32, 32)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "dataset-20260101-0000000000"], "no artifact"),
        (["show", "../../etc"], "invalid artifact id"),
        (["show", "latest"], "no datasets"),
        (["phantom", "--n", "10", "--size", "48"], "--size"),
        (["phantom", "--n", "10", "--prevalence", "Cardiomegally=0.5"], "Cardiomegally"),
        (["phantom", "--n", "10", "--prevalence", "Effusion"], "NAME=RATE"),
        (["ingest-nih", "--csv", "/nonexistent.csv", "--images", "/tmp", "--size", "64"], "not found"),
    ],
)
def test_errors_are_one_line_exit_2(args: list[str], needle: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert needle in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert res.stdout.strip() == ""


def test_missing_column_csv_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels\nx.png,No Finding\n")
    res = runner.invoke(app, ["ingest-nih", "--csv", str(tmp_path), "--images", str(tmp_path)])
    assert res.exit_code == 2 and "'Patient ID'" in res.stderr


def test_help_is_useful() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for verb in ("phantom", "ingest-nih", "show", "list"):
        assert verb in res.stdout
    res = runner.invoke(app, ["ingest-nih", "--help"])
    assert "--official-lists" in res.stdout and "--workers" in res.stdout


def test_console_script_json_stdout_only(tmp_path: Path) -> None:
    """The installed `gdgan` command: one JSON line on stdout, progress on stderr."""
    exe = Path(sys.executable).parent / "gdgan"
    if not exe.exists():
        pytest.skip("gdgan console script not installed")
    env = {**os.environ, "GDGAN_STORE_URL": (tmp_path / "s").as_uri()}
    proc = subprocess.run(
        [str(exe), "data", "phantom", "--n", "40", "--size", "32", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["n"] == 40
