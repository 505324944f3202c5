"""The adapters on the publishers' *real* label files, as shipped inside the torchxrayvision wheel
(CheXpert's train.csv, PadChest's 160K CSV, VinDr-CXR's box annotations as Kaggle's train.csv),
with generated images placed at the paths a sampled subset of rows lists.

The expected labels of every sampled image are computed here independently with the csv module
from the same file; every unsampled row is a missing file, counted, never fatal. Skips cleanly
when torchxrayvision (a pinned dev dependency, installed without its own dependencies) is absent.
"""

from __future__ import annotations

import ast
import csv
import gzip
import importlib.util
from collections import defaultdict
from pathlib import Path

import byo_layouts as L
import numpy as np
import pytest
from gdgan.data.adapters import ingest_source

pytestmark = pytest.mark.integration  # about a minute: 550k real label rows are parsed

KW = {"workers": 1, "salt": "s"}


def _data_dir() -> Path:
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or spec.origin is None:
        pytest.skip("torchxrayvision is not installed (pip install --no-deps 'torchxrayvision==1.5.7')")
    return Path(spec.origin).parent / "data"


def _rows(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_real_chexpert_csv(tmp_path: Path) -> None:
    src = _data_dir() / "chexpert_train.csv.gz"
    rows = _rows(src)
    obs = L.CHEXPERT_HEADER[6:]
    sample = rows[:40:3] + rows[1000::7919]  # includes uncertain (-1) values and laterals
    for r in sample:
        L.write_jpeg(tmp_path / r["Path"], 80)
    expect: dict[str, dict[str, list[int]]] = {"ones": {}, "zeros": {}}
    laterals = 0
    for r in sample:
        if r["Frontal/Lateral"] == "Lateral":
            laterals += 1
            continue
        if r["Sex"] not in ("Male", "Female") or r["AP/PA"] not in ("AP", "PA"):
            continue
        for policy, u in (("ones", 1), ("zeros", 0)):
            expect[policy][r["Path"]] = [
                {"1.0": 1, "-1.0": u}.get(r[o].strip(), 0) for o in obs
            ]  # blank / 0.0 -> 0
    assert laterals and any("-1.0" in r.values() for r in sample)
    for policy in ("ones", "zeros"):
        opts = {"csv": str(src), "images": str(tmp_path), "uncertainty": policy}
        ds, rep = ingest_source("chexpert", 32, opts, resume_dir=tmp_path / "w", **KW)
        assert rep.rows == len(rows) and rep.bad_rows.count == 0 and rep.unknown_labels.count == 0
        got = {k: ds.labels["findings"][i].tolist() for i, k in enumerate(ds.labels["image_index"].tolist())}
        assert got == expect[policy]
        assert rep.missing_files.count > 100_000  # every row without a generated image


def test_real_padchest_csv(tmp_path: Path) -> None:
    src = _data_dir() / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"
    rows = _rows(src)
    sample = [r for r in rows[::9000] if r["Projection"] in ("PA", "AP", "AP_horizontal")][:12]
    for i, r in enumerate(sample):
        L.write_png(tmp_path / r["ImageDir"] / r["ImageID"], L.const(500 + 100 * i))  # 16-bit
    ds, rep = ingest_source(
        "padchest", 32, {"csv": str(src), "images": str(tmp_path)}, resume_dir=tmp_path / "w", **KW
    )
    assert rep.rows == len(rows)
    assert "normal" not in ds.schema.findings and list(ds.schema.findings) == sorted(ds.schema.findings)
    assert len(ds.schema.findings) > 100  # PadChest's own label set, not a fixed list
    k = {key: i for i, key in enumerate(ds.labels["image_index"].tolist())}
    checked = 0
    for r in sample:
        labels = (
            {x.strip() for x in ast.literal_eval(r["Labels"]) if x.strip()} if r["Labels"] != "nan" else None
        )
        if labels is None or "exclude" in labels or r["PatientSex_DICOM"] not in ("M", "F"):
            assert r["ImageID"] not in k
            continue
        row = ds.labels["findings"][k[r["ImageID"]]]
        assert {ds.schema.findings[j] for j in np.flatnonzero(row)} == labels - {"normal"}
        assert ds.labels["view"][k[r["ImageID"]]] == (0 if r["Projection"] == "PA" else 1)
        checked += 1
    assert checked >= 8


def test_real_vindr_box_annotations(tmp_path: Path) -> None:
    src = _data_dir() / "vinbigdata-train.csv.gz"
    rows = _rows(src)
    ids = sorted({r["image_id"] for r in rows})[::1500][:8]
    for i, iid in enumerate(ids):
        L.write_dicom(tmp_path / "train" / f"{iid}.dicom", L.const(1000 + i), patient_id=None)
    marks: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in rows:
        marks[r["image_id"]][r["rad_id"]].add(r["class_name"])
    for merge in ("majority", "any"):
        ds, rep = ingest_source("vindr", 32, {"labels": str(src), "images": str(tmp_path), "merge": merge},
                                resume_dir=tmp_path / "w", **KW)  # fmt: skip
        assert "No finding" not in ds.schema.findings and len(ds.schema.findings) == 14
        assert rep.missing_files.count == len(marks) - len(ids)
        k = {key: i for i, key in enumerate(ds.labels["image_index"].tolist())}
        for iid in ids:
            readers = marks[iid]
            want = set()
            for f in ds.schema.findings:
                n = sum(f in names for names in readers.values())
                if (merge == "any" and n >= 1) or (merge == "majority" and 2 * n > len(readers)):
                    want.add(f)
            got = {ds.schema.findings[j] for j in np.flatnonzero(ds.labels["findings"][k[f"train/{iid}"]])}
            assert got == want, (iid, merge)


def test_real_age_columns_give_the_age_band(tmp_path: Path) -> None:
    """CheXpert's Age and PadChest's birth year + study date, on their real files, with an age band:
    the stored ages are the ones recomputed from the rows and the bands follow the default edges."""
    from gdgan.labels import AGE_BAND

    chex = _data_dir() / "chexpert_train.csv.gz"
    rows = [r for r in _rows(chex)[5000:60000:5000] if r["Frontal/Lateral"] == "Frontal"]
    for r in rows:
        L.write_jpeg(tmp_path / r["Path"], 70)
    ds, _ = ingest_source("chexpert", 32, {"csv": str(chex), "images": str(tmp_path)},
                          resume_dir=tmp_path / "w", age_band=True, **KW)  # fmt: skip
    ages = dict(zip(ds.labels["image_index"].tolist(), ds.labels["age"].tolist()))
    kept = {
        r["Path"]: int(r["Age"])
        for r in rows
        if r["Sex"] in ("Male", "Female") and r["AP/PA"] in ("AP", "PA")
    }
    assert ages == {k: a for k, a in kept.items() if 0 <= a <= 120} and len(ages) >= 5
    assert ds.schema.general == ("gender", "view", AGE_BAND)
    bands = ds.general()[:, 2:].sum(axis=1)
    assert bands.tolist() == [(a >= 40) + (a >= 60) for a in ds.labels["age"].tolist()]

    pad = _data_dir() / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"
    prow = [r for r in _rows(pad)[::9000] if r["Projection"] in ("PA", "AP")][:10]
    for i, r in enumerate(prow):
        L.write_png(tmp_path / "pc" / r["ImageDir"] / r["ImageID"], L.const(700 + i))
    ds, _ = ingest_source("padchest", 32, {"csv": str(pad), "images": str(tmp_path / "pc")},
                            resume_dir=tmp_path / "w2", age_band=True, **KW)  # fmt: skip
    got = dict(zip(ds.labels["image_index"].tolist(), ds.labels["age"].tolist()))
    for r in prow:
        if r["ImageID"] in got:
            assert got[r["ImageID"]] == int(r["StudyDate_DICOM"][:4]) - int(float(r["PatientBirth"]))
    assert len(got) >= 6 and all(0 <= a <= 120 for a in got.values())
