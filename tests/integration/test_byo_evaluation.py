"""The whole experiment on a folder of PNGs with no sex and no view: ``gdgan data ingest-folder``,
then ``gdgan reproduce --dataset ... --preset tiny`` in subprocesses against a fresh store.

GDGAN's stage 1 is unconditional there (no general labels), stage 2 and ACGAN condition on the
folder's classes; the evaluation synthesises by the models' own labels. Checked: the report is
valid, names the folder's finding, has all five strategies, and every stored model carries the
dataset's label schema.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from svcstack import cli_env, cli_json

pytestmark = pytest.mark.integration


def test_experiment_on_a_folder_without_sex_or_view(tmp_path: Path) -> None:
    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.evaluation.schema import validate_report
    from gdgan.labels import SCHEMA_KEY
    from gdgan.store import open_store

    # phantom images (a real Cardiomegaly signal) sorted into class folders: the labels are the folders
    ds = make_phantom(PhantomConfig(n=400, size=32, seed=2, prevalence={"Cardiomegaly": 0.12}))
    cm = ds.labels["findings"][:, 1]
    for i in range(len(ds)):
        d = tmp_path / "tree" / ("Cardiomegaly" if cm[i] else "No Finding")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(ds.images[i])).save(d / f"{i:04d}.png")
    # a fixed salt: each file is its own patient and the split follows the salted ids, so a random
    # salt gave a different split per run (and now and then a validation part without a positive)
    env = cli_env(tmp_path, GDGAN_NUM_THREADS="1", GDGAN_PATIENT_ID_SALT="byo-eval-test")
    ing = cli_json(
        ["data", "ingest-folder", "--root", str(tmp_path / "tree"), "--size", "32", "--workers", "1"], env
    )
    assert ing["labels"] == {"general": [], "findings": ["Cardiomegaly"]} and ing["n"] == 400
    out = cli_json(["reproduce", "--dataset", ing["id"], "--preset", "tiny", "--repeats", "1"], env)
    assert set(out["auc"]) == {"none", "undersample", "oversample", "acgan", "gdgan"}
    assert all(0.0 <= a <= 1.0 for a in out["auc"].values())
    store = open_store(env["GDGAN_STORE_URL"])
    report = store.get_json(out["id"], "report.json")
    validate_report(report)
    assert report["finding"] == "Cardiomegaly"
    models = [m for m in store.list() if m.kind in ("gdgan", "acgan", "gdgan-stage1", "gdgan-stage2")]
    assert {m.kind for m in models} == {"gdgan", "acgan", "gdgan-stage1", "gdgan-stage2"}
    assert all(m.meta[SCHEMA_KEY] == ing["labels"] for m in models)
