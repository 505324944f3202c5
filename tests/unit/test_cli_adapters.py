"""``gdgan data ingest-chexpert|mimic|padchest|vindr|csv|folder``: each verb end to end into a store.

One JSON object on stdout (id, labels, report, counts), a progress bar on stderr, the stored
dataset carrying the source's label schema, and bad input as one line on stderr with exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import byo_layouts as L
import pytest
from gdgan.cli.data import app
from gdgan.data.dataset import load_dataset
from gdgan.store import open_store
from typer.testing import CliRunner

runner = CliRunner()


def _json(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def _run(tmp: Path, args: list[str]) -> tuple[dict, object]:
    store = (tmp / "store").as_uri()
    res = runner.invoke(app, [*args, "--size", "32", "--workers", "1", "--store", store, "--json",
                              "--resume-dir", str(tmp / "work")])  # fmt: skip
    out = _json(res)
    ds = load_dataset(open_store(store), out["id"])
    assert out["n"] == len(ds) and out["size"] == 32 and ds.images.shape[1:] == (32, 32)
    assert out["labels"] == ds.schema.to_dict()
    assert "32px" in res.stderr  # the progress bar went to stderr
    return out, ds


def test_ingest_chexpert(tmp_path: Path) -> None:
    p = L.chexpert(tmp_path / "c")
    out, ds = _run(tmp_path, ["ingest-chexpert", "--csv", str(p["csv"]), "--images", str(p["images"]),
                              "--uncertainty", "zeros", "--findings", "Cardiomegaly,Edema"])  # fmt: skip
    assert out["labels"] == {"general": ["gender", "view"], "findings": ["Cardiomegaly", "Edema"]}
    assert out["report"]["notes"]["uncertainty"] == "zeros" and ds.config["uncertainty"] == "zeros"
    assert out["counts"]["findings"] == {"Cardiomegaly": 4, "Edema": 0} and out["n"] == 11


def test_ingest_mimic(tmp_path: Path) -> None:
    p = L.mimic(tmp_path / "m")
    out, ds = _run(tmp_path, ["ingest-mimic", "--metadata", str(p["metadata"]), "--labels", str(p["labels"]),
                              "--patients", str(p["patients"]), "--split", str(p["split"]),
                              "--images", str(p["images"])])  # fmt: skip
    assert out["n"] == 6 and out["labels"]["general"] == ["gender", "view"]
    assert out["counts"]["gender"] == {"M": 3, "F": 3} and int(ds.labels["official_split"].max()) == 2


def test_ingest_padchest(tmp_path: Path) -> None:
    p = L.padchest(tmp_path / "p")
    out, _ = _run(tmp_path, ["ingest-padchest", "--csv", str(p["csv"]), "--images", str(p["images"])])
    assert out["labels"]["findings"] == ["cardiomegaly", "pleural effusion"] and out["n"] == 4


def test_ingest_vindr(tmp_path: Path) -> None:
    p = L.vindr(tmp_path / "v")
    out, ds = _run(tmp_path, ["ingest-vindr", "--labels", str(p["labels"]), "--images", str(p["images"]),
                              "--test-labels", str(p["test_labels"]), "--merge", "any"])  # fmt: skip
    assert out["report"]["notes"]["merge"] == "any" and out["n"] == 4 and "pixel_spacing" in ds.labels


def test_ingest_csv_by_flags_and_by_mapping(tmp_path: Path) -> None:
    p = L.generic_csv(tmp_path / "g")
    out, _ = _run(tmp_path, ["ingest-csv", "--csv", str(p["csv"]), "--images", str(p["images"]),
                             "--path-column", "file", "--findings-column", "labels", "--sex-column", "Sex",
                             "--patient-column", "subject"])  # fmt: skip
    assert out["labels"] == {"general": ["gender"], "findings": ["A", "B"]}
    assert out["report"]["corrupt_files"]["count"] == 1 and out["report"]["missing_files"]["count"] == 1
    m = tmp_path / "map.json"
    m.write_text(json.dumps({"path": "file", "findings": {"columns": {"Cardiomegaly": "cardio"}}}))
    out2, _ = _run(tmp_path, ["ingest-csv", "--csv", str(p["csv"]), "--images", str(p["images"]),
                              "--mapping", str(m), "--general", "none"])  # fmt: skip
    assert out2["labels"] == {"general": [], "findings": ["Cardiomegaly"]}


def test_ingest_folder(tmp_path: Path) -> None:
    L.folder(tmp_path / "f")
    out, ds = _run(tmp_path, ["ingest-folder", "--root", str(tmp_path / "f")])
    assert out["labels"] == {"general": [], "findings": ["Cardiomegaly", "Effusion"]} and out["n"] == 18
    assert out["counts"]["gender"] == {} and int((ds.labels["official_split"] == 2).sum()) == 6
    table = runner.invoke(app, ["show", out["id"], "--store", (tmp_path / "store").as_uri()])
    assert table.exit_code == 0 and "Effusion" in table.stdout


def test_age_band_flag(tmp_path: Path) -> None:
    """``--age-band`` on a verb (and ``age_band`` in ``--general``): the schema gains the band, the
    counts and ``data show`` list it."""
    p = L.chexpert(tmp_path / "c")
    out, _ = _run(tmp_path, ["ingest-chexpert", "--csv", str(p["csv"]), "--images", str(p["images"]),
                              "--age-band"])  # fmt: skip
    assert out["labels"]["general"] == ["gender", "view", "age_band"] and out["labels"]["age_edges"] == [
        40,
        60,
    ]
    assert out["counts"]["age_band"] == {"0-39": 0, "40-59": 0, "60+": out["n"]}  # every Age is 63
    table = runner.invoke(app, ["show", out["id"], "--store", (tmp_path / "store").as_uri()])
    assert table.exit_code == 0 and "age 60+" in table.stdout
    L.folder(tmp_path / "f", dicom=True)
    res = runner.invoke(app, ["ingest-folder", "--root", str(tmp_path / "f"), "--general", "gender,age_band",
                              "--size", "32", "--workers", "1", "--json",
                              "--store", (tmp_path / "store2").as_uri()])  # fmt: skip
    assert res.exit_code == 2 and "no usable images" in res.stderr  # the DICOMs carry no PatientAge


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest-chexpert", "--csv", "nope.csv", "--images", "."], "not found"),
        (["ingest-folder", "--root", "."], "class subfolders"),
        (["ingest-csv", "--csv", "x.csv", "--images", "."], "--path-column"),
        (["ingest-vindr", "--labels", "x.csv", "--images", ".", "--general", "age"], "'age'"),
        (["ingest-folder", "--root", ".", "--size", "48"], "--size"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    args = [a if a != "." else str(tmp_path / "empty") for a in args]
    res = runner.invoke(app, [*args, "--store", (tmp_path / "store").as_uri()])
    assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1, res.stderr
