"""``gdgan reproduce --preset tiny``: the paper's whole experiment end to end on a phantom.

Runs the real CLI in a subprocess against a fresh local store, then checks the stored report:
schema, lineage (every GAN trained on its split's training part), Table 2 counts from the
documented formulas, and a self-contained HTML page.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from svcstack import cli_env, cli_json

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("reproduce")
    env = cli_env(root)
    out = cli_json(["reproduce", "--preset", "tiny"], env)
    return {"out": out, "env": env, "root": root}


def test_report_artifact(run: dict) -> None:
    from gdgan.evaluation.schema import validate_report
    from gdgan.store import open_store

    out = run["out"]
    store = open_store(run["env"]["GDGAN_STORE_URL"])
    m = store.manifest(out["id"])
    assert m.kind == "report" and out["dataset_id"] in m.parents
    assert {"report.json", "report.html", "roc.json", "roc.png"} <= set(m.files)
    report = store.get_json(out["id"], "report.json")
    validate_report(report)
    assert set(out["auc"]) == {"none", "undersample", "oversample", "acgan", "gdgan"}

    # GANs trained per split on that split's training part only
    lin = report["lineage"]
    assert lin["all_ok"] and len(lin["repeats"]) == report["plan"]["repeats"] == 2
    models = [pr["models"] for pr in lin["repeats"]]
    assert models[0]["gdgan"] != models[1]["gdgan"] and models[0]["acgan"] != models[1]["acgan"]

    # Table 2 counts follow the documented formulas
    from gdgan.evaluation.augment import strategy_counts

    for s, row in report["table2"]["rows"].items():
        for c in row["counts_per_repeat"]:
            ref = strategy_counts(s, c["real_positives"], c["real_negatives"], report["positive_share"])
            assert (c["total"], c["positives"]) == (ref.total, ref.positives)
        assert len(row["auc_per_repeat"]) == 2

    html = store.get_bytes(out["id"], "report.html").decode()
    assert "data:image/png;base64," in html and "src='http" not in html
    assert Path(out["html"]).is_file()


def test_cli_errors_are_one_line(run: dict) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gdgan.cli.main",
            "evaluate",
            "--dataset",
            "dataset-nope",
            "--gdgan",
            "gdgan",
            "--acgan",
            "acgan",
        ],
        capture_output=True,
        text=True,
        env=run["env"],
        timeout=120,
    )
    assert proc.returncode == 2 and "dataset-nope" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "gdgan.cli.main", "reproduce", "--preset", "huge"],
        capture_output=True,
        text=True,
        env=run["env"],
        timeout=120,
    )
    assert proc.returncode == 2 and "huge" in proc.stderr


REASSEMBLE = """
import json, sys, torch
torch.set_num_threads(2)
from gdgan.evaluation.assemble import assemble_report
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.evaluation.sections import store_section
from gdgan.store import open_store
store = open_store()
report = store.get_json(sys.argv[1], "report.json")
ids = sorted({i for row in report["table2"]["rows"].values() for i in row["part_ids"]})
parts = [{**store.get_json(i, "part.json"), "artifact_id": i} for i in ids]
plan = EvaluationPlan(**report["plan"])
if sys.argv[2] == "sections":
    models = report["lineage"]["repeats"][0]["models"]
    # the job queue's path: each section its own task; reversed here, so a section that leaned
    # on what the other left behind (a random state) would show as different bytes
    secs = {n: store_section(n, plan, store, models) for n in ("harness", "quality")}
    print(assemble_report(plan, parts, store, sections=secs))
else:
    print(assemble_report(plan, parts, store))
"""


@pytest.mark.parametrize("how", ["computed", "sections"])
def test_reassembly_from_stored_parts_gives_the_same_bytes(run: dict, how: str) -> None:
    """A fresh process with another thread count re-assembles the report from the stored parts
    alone (no GAN-training results passed in): report.json and report.html are byte-equal, and
    the run times live in timings.json instead. 'sections': the quality sections are first
    stored as their own artifacts (what the job queue does, beside GAN training) and the report
    only reads them: still the same bytes as the report that computed them itself."""
    from gdgan.store import open_store

    env = {**run["env"], "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", REASSEMBLE, run["out"]["id"], how],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = proc.stdout.strip().splitlines()[-1]
    store = open_store(run["env"]["GDGAN_STORE_URL"])
    assert again != run["out"]["id"]
    for name in ("report.json", "report.html", "roc.json", "roc.png"):
        assert store.get_bytes(again, name) == store.get_bytes(run["out"]["id"], name), name
    timings = store.get_json(again, "timings.json")
    assert timings["seconds"] > 0 and "quality/seconds" in timings
    if how == "sections":
        assert sorted(m.meta["section"] for m in store.list("eval-section")) == ["harness", "quality"]


def _report_tables(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gdgan.cli.main", "report", "tables", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_report_tables_markdown_quotes_the_stored_figures(run: dict, tmp_path: Path) -> None:
    """``gdgan report tables ID --markdown --figures DIR``: every AUC mean, IS mean and harness
    distance of report.json appears in the markdown, the PNGs are copied byte for byte and
    linked, and the report folder on disk gives the same text as the id."""
    from gdgan.store import open_store

    rid = run["out"]["id"]
    store = open_store(run["env"]["GDGAN_STORE_URL"])
    report = store.get_json(rid, "report.json")
    proc = _report_tables(
        [rid, "--markdown", "--figures", str(tmp_path / "fig"), "--link-prefix", "img"], run["env"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = proc.stdout
    rows = report["table2"]["rows"]
    for s, row in rows.items():
        assert f"{row['auc_mean']:.4f}" in md, s
    for name, sc in report["quality"]["inception_score"]["domain"]["scores"].items():
        assert f"{sc['mean']:.4f}" in md, name
    h = report["quality"]["harness"]
    assert h["available"]
    for name, m in h["models"].items():
        assert f"{m['distances']['relative_fd']:.2f}" in md and f"{m['distances']['recall']:.3f}" in md, name
    assert md.count("\n| ") >= len(rows) + 3  # table rows, not prose
    pngs = [n for n in store.manifest(rid).files if n.endswith(".png")]
    assert "roc.png" in pngs
    for name in pngs:
        assert (tmp_path / "fig" / name).read_bytes() == store.get_bytes(rid, name), name
        assert f"](img/{name})" in md, name
    folder = Path(run["env"]["GDGAN_STORE_URL"].removeprefix("file://")) / "artifacts" / rid
    again = _report_tables([str(folder), "--markdown"], run["env"])
    assert again.returncode == 0 and again.stdout.rstrip() == md.split("\n\n![")[0].rstrip()
    bad = _report_tables(["report-nope", "--markdown"], run["env"])
    assert bad.returncode == 2 and "report-nope" in bad.stderr and "Traceback" not in bad.stderr
