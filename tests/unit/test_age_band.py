"""The age band as a general label: band edges as a setting, ingested from every source that has an
age, recorded in the schema, conditioned on by stage 1 and asked for by generation requests.

Expected bands are recomputed here from the raw ages with plain comparisons (not the schema's
``searchsorted``), and each source's age from its own columns (CheXpert Age, MIMIC anchor_age +
study year - anchor_year, PadChest study year - birth year, DICOM PatientAge, NIH Patient Age).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import byo_layouts as L
import numpy as np
import pytest
import torch
from gdgan.data.adapters import ingest_source
from gdgan.data.dataset import ImageDataset, load_dataset
from gdgan.data.nih import ingest_nih
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.imageset import zip_bytes
from gdgan.labels import AGE_BAND, NIH_SCHEMA, LabelError, LabelSchema, age_band_names, general_choice
from gdgan.settings import SettingsError, get_settings
from gdgan.store.local import LocalStore
from gdgan.training.api import train
from gdgan.training.sampling import load_generator

KW = {"workers": 1, "salt": "s"}
AGED = LabelSchema(general=("gender", "view", AGE_BAND), findings=("A", "B"), age_edges=(40, 60))


def band(age: int, edges: tuple[int, ...] = (40, 60)) -> int:
    """Reference: the number of edges at or below the age (plain loop)."""
    return sum(1 for e in edges if age >= e)


# ------------------------------------------------------------------------- the schema ---
def test_band_names_columns_and_errors() -> None:
    assert age_band_names((40, 60)) == ("0-39", "40-59", "60+") and age_band_names((18,)) == ("0-17", "18+")
    assert AGED.values(AGE_BAND) == ("0-39", "40-59", "60+")
    assert AGED.general_columns == ("gender=F", "view=AP", "age_band>=40-59", "age_band>=60+")
    assert AGED.n_general == 4 and len(AGED.groups()) == 2 * 2 * 3
    assert AGED.group_key((1, 0, 2)) == "F/PA/60+"
    codes = np.array([[0, 1, 0], [1, 0, 1], [1, 1, 2]])
    cols = AGED.columns(codes)  # thermometer: band k switches on the first k age columns
    assert cols.tolist() == [[0, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]]
    assert np.array_equal(AGED.codes(cols), codes)
    ages = np.array([-1, 0, 39, 40, 59, 60, 120, 121])
    assert AGED.age_codes(ages).tolist() == [-1, *[band(a) for a in ages[1:-1]], -1]
    assert LabelSchema.from_dict(AGED.to_dict()) == AGED
    assert "age_edges" not in NIH_SCHEMA.to_dict() and NIH_SCHEMA.n_general == 2  # NIH unchanged
    with pytest.raises(LabelError, match=r"unknown age_band '70-79'.*0-39, 40-59, 60\+") as e:
        AGED.check_general(AGE_BAND, "70-79")
    assert e.value.field == AGE_BAND
    with pytest.raises(LabelError, match=r"no 'age_band' label.*gender, view") as e:
        NIH_SCHEMA.check_general(AGE_BAND, "60+")
    assert e.value.field == AGE_BAND
    for bad in ((), (60, 40), (0,), (40, 200)):
        with pytest.raises(LabelError, match="edge"):
            LabelSchema(general=(AGE_BAND,), findings=("A",), age_edges=bad)
    with pytest.raises(LabelError, match="no age_band label"):
        LabelSchema(general=("view",), findings=("A",), age_edges=(40,))
    assert general_choice("age_band,gender") == ("gender", AGE_BAND) and general_choice("auto") == "auto"
    with pytest.raises(LabelError, match="'age' is not a general label"):
        general_choice("age")


def test_band_edges_are_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().age_edges() == (40, 60)
    monkeypatch.setenv("GDGAN_AGE_BAND_EDGES", "30,50,70")
    get_settings.cache_clear()
    assert get_settings().age_edges() == (30, 50, 70)
    monkeypatch.setenv("GDGAN_AGE_BAND_EDGES", "50,30")
    get_settings.cache_clear()
    with pytest.raises((SettingsError, ValueError), match="GDGAN_AGE_BAND_EDGES"):
        get_settings()


# ---------------------------------------------------------------- each source's ages ---
def _ages_by_key(ds: ImageDataset) -> dict[str, int]:
    return dict(zip(ds.labels["image_index"].tolist(), ds.labels["age"].tolist()))


def _check_bands(ds: ImageDataset, edges: tuple[int, ...] = (40, 60)) -> None:
    """The stored general columns are the thermometer of the reference band of each stored age."""
    assert ds.schema.has(AGE_BAND) and ds.schema.age_edges == edges
    want = np.array([band(int(a), edges) for a in ds.labels["age"]])
    got = ds.general()[:, -len(edges) :].sum(axis=1)
    assert np.array_equal(got, want)
    counts = {n: int((want == i).sum()) for i, n in enumerate(age_band_names(edges))}
    assert ds.counts()[AGE_BAND] == counts


def test_chexpert_age_column(tmp_path: Path) -> None:
    opts = {k: str(v) for k, v in L.chexpert(tmp_path / "c").items()}
    ds, _ = ingest_source("chexpert", 32, opts, resume_dir=tmp_path / "w", age_band=True, **KW)
    assert ds.schema.general == ("gender", "view", AGE_BAND)
    assert set(_ages_by_key(ds).values()) == {63}  # the fixture's Age column
    _check_bands(ds)


def _mimic(root: Path) -> dict[str, str]:
    """Subject 1 has three studies whose ids are NOT in date order; subject 2 one, without anchor_year."""
    studies = [  # subject, study, dicom, StudyDate, StudyTime
        ("10000001", "59000000", "d-late", "21850102", "101500"),
        ("10000001", "51000000", "d-first", "21800506", "080000"),
        ("10000001", "55000000", "d-mid", "21800506", "143000.5"),
        ("10000002", "52000000", "d-other", "21900101", "000000"),
    ]
    meta, labels = [], []
    for subj, study, did, date, time in studies:
        L.write_jpeg(root / "files" / f"p{subj[:2]}" / f"p{subj}" / f"s{study}" / f"{did}.jpg", 60)
        meta.append([did, subj, study, "PA", date, time])
        labels.append([subj, study, "1.0", ""])
    return {
        "metadata": str(
            L.write_csv(
                root / "meta.csv",
                ["dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime"],
                meta,
            )
        ),
        "labels": str(
            L.write_csv(root / "lab.csv", ["subject_id", "study_id", "Edema", "Cardiomegaly"], labels)
        ),
        "patients": str(
            L.write_csv(
                root / "patients.csv",
                ["subject_id", "gender", "anchor_age", "anchor_year"],
                [["10000001", "F", "52", "2180"], ["10000002", "M", "33", ""]],
            )
        ),
        "images": str(root),
        "findings": ["Edema", "Cardiomegaly"],  # type: ignore[dict-item]
    }


def test_mimic_anchor_age_and_follow_up_order(tmp_path: Path) -> None:
    ds, rep = ingest_source(
        "mimic", 32, _mimic(tmp_path / "m"), resume_dir=tmp_path / "w", age_band=True, **KW
    )
    by = {k.rsplit("/", 1)[1]: i for i, k in enumerate(ds.labels["image_index"].tolist())}
    age = {k: int(ds.labels["age"][i]) for k, i in by.items()}
    fu = {k: int(ds.labels["follow_up"][i]) for k, i in by.items()}
    # anchor_age 52 in anchor_year 2180: 52 in 2180, 57 in 2185; no anchor_year: anchor_age as is
    assert age == {"d-first.jpg": 52, "d-mid.jpg": 52, "d-late.jpg": 57, "d-other.jpg": 33}
    # the study order by StudyDate/StudyTime, whatever the (random) study ids say
    assert fu == {"d-first.jpg": 0, "d-mid.jpg": 1, "d-late.jpg": 2, "d-other.jpg": 0}
    assert "StudyDate" in rep.notes["follow_up"]
    _check_bands(ds)
    undated = tmp_path / "m" / "undated.csv"
    with open(_mimic(tmp_path / "m")["metadata"]) as fh:
        rows = [r[:4] for r in csv.reader(fh)]
    L.write_csv(undated, rows[0], rows[1:])
    ds2, rep2 = ingest_source(
        "mimic", 32, {**_mimic(tmp_path / "m"), "metadata": str(undated)}, resume_dir=tmp_path / "w2", **KW
    )
    assert set(ds2.labels["follow_up"].tolist()) == {0} and "no StudyDate" in rep2.notes["follow_up"]
    assert sorted(ds2.labels["age"].tolist()) == [33, 52, 52, 52]  # anchor_age without a study year


def test_padchest_birth_and_study_year(tmp_path: Path) -> None:
    root = tmp_path / "p"
    rows = []
    for i, (birth, date) in enumerate([("1930.0", "20140915"), ("1975", "20150101"), ("nan", "20150101")]):
        L.write_png(root / "0" / f"i{i}.png", L.const(1000 + i))
        rows.append(
            [f"i{i}.png", "0", f"P{i}", "F", "PA", "['normal']" if i else "['cardiomegaly']", birth, date]
        )
    hdr = ["ImageID", "ImageDir", "PatientID", "PatientSex_DICOM", "Projection", "Labels", "PatientBirth"]
    csv_path = L.write_csv(root / "pc.csv", [*hdr, "StudyDate_DICOM"], rows)
    ds, rep = ingest_source(
        "padchest",
        32,
        {"csv": str(csv_path), "images": str(root)},
        resume_dir=tmp_path / "w",
        age_band=True,
        **KW,
    )
    assert _ages_by_key(ds) == {"i0.png": 84, "i1.png": 40}  # 2014-1930, 2015-1975
    assert rep.missing_general.count == 1 and "no age_band" in rep.missing_general.examples[0]
    _check_bands(ds)


def test_dicom_patient_age_in_a_folder(tmp_path: Path) -> None:
    root = tmp_path / "f"
    for i, age in enumerate(["025Y", "045Y", "071Y", None]):
        L.write_dicom(root / "Cardiomegaly" / f"x{i}.dcm", L.const(1500 + i), patient_id=f"P{i}", age=age)
    ds, rep = ingest_source(
        "folder",
        32,
        {"root": str(root), "general": ["gender", "view", AGE_BAND]},
        resume_dir=tmp_path / "w",
        **KW,
    )
    assert sorted(_ages_by_key(ds).values()) == [25, 45, 71] and rep.missing_general.count == 1
    _check_bands(ds)


def test_csv_age_column_with_other_edges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDGAN_AGE_BAND_EDGES", "18,65")
    get_settings.cache_clear()
    root = tmp_path / "c"
    rows = []
    for i, age in enumerate(["12", "18", "64", "65", "abc", "130"]):
        L.write_png(root / f"x{i}.png", np.full((20, 20), 9 * i, np.uint8))
        rows.append([f"x{i}.png", "A" if i % 2 else "No Finding", age])
    csv_path = L.write_csv(root / "l.csv", ["file", "labels", "age"], rows)
    mapping = {"path": "file", "findings": {"list": {"column": "labels"}}, "age": "age"}
    ds, rep = ingest_source(
        "csv", 32, {"csv": str(csv_path), "images": str(root), "mapping": mapping},
        resume_dir=tmp_path / "w", age_band=True, **KW,
    )  # fmt: skip
    assert ds.schema.general == (AGE_BAND,) and ds.schema.values(AGE_BAND) == ("0-17", "18-64", "65+")
    assert sorted(_ages_by_key(ds).values()) == [12, 18, 64, 65] and rep.missing_general.count == 2
    _check_bands(ds, (18, 65))


def test_nih_patient_age_on_the_real_sample(nih_sample: Path, tmp_path: Path) -> None:
    csv_path = nih_sample / "Data_Entry_2017_v2020.csv"
    ds, _ = ingest_nih(csv_path, nih_sample / "images", 32, workers=1, limit=80,
                         resume_dir=tmp_path / "w", age_band=True)  # fmt: skip
    with open(csv_path, newline="") as fh:
        ref = {r["Image Index"]: int(r["Patient Age"]) for r in csv.DictReader(fh)}
    assert ds.schema.general == ("gender", "view", AGE_BAND) and ds.config["age_band_edges"] == [40, 60]
    assert _ages_by_key(ds) == {k: ref[k] for k in ds.labels["image_index"].tolist()}
    _check_bands(ds)
    plain, _ = ingest_nih(
        csv_path, nih_sample / "images", 32, workers=1, limit=80, resume_dir=tmp_path / "w2"
    )
    assert plain.schema == NIH_SCHEMA  # without the flag: NIH's schema, the paper's setting


# ------------------------------------------------------------- stage 1 and generation ---
@pytest.fixture(scope="module")
def aged_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalStore, str, ImageDataset]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("aged")
    store = LocalStore(root / "store", cache_dir=root / "cache")
    base = make_phantom(PhantomConfig(n=96, size=32, seed=5))
    rng = np.random.default_rng(0)
    labels = dict(base.labels)
    # every sex/view group gets all three bands; "B" only among 60+ (a mix the sampler must follow)
    labels["age"] = np.resize(np.array([20, 50, 70], np.int16), len(base))
    labels["findings"] = np.zeros((len(base), 2), np.uint8)
    labels["findings"][:, 0] = rng.random(len(base)) < 0.3
    labels["findings"][:, 1] = labels["age"] >= 60
    ds = ImageDataset(images=np.asarray(base.images), labels=labels, config={"source": "test"}, schema=AGED)
    ds.save(store)
    assert ds.id is not None
    fast = {"steps": 3, "checkpoint_every": 2, "batch_size": 8, "ngf": 8, "ndf": 8}
    res = train("gdgan", ds.id, store=store, preset="tiny", overrides=fast, device="cpu")
    assert all(math.isfinite(v) for v in res.final_losses["stage1"].values())
    return store, res.model_ids["gdgan"], load_dataset(store, ds.id)


def test_stage1_is_conditioned_on_the_age_band(aged_model: tuple[LocalStore, str, ImageDataset]) -> None:
    store, model_id, ds = aged_model
    assert ds.schema == AGED and ds.general().shape == (96, 4)
    g = load_generator(store, model_id, device="cpu")
    assert g.schema == AGED and g.g1 is not None
    assert g.g1.fc.in_features == g.nz + 4  # sex, view and two age-band columns
    # the band reaches G1: the same z with another band gives other stage-1 pixels
    req = g.prepare(4, None, "F", "PA", seed=3, age_band="0-39")
    other = g.prepare(4, None, "F", "PA", seed=3, age_band="60+")
    assert np.array_equal(req.z, other.z) and not np.array_equal(req.general, other.general)
    a = g.generate(req.z, req.general, req.detail, stage=1)
    b = g.generate(other.z, other.general, other.detail, stage=1)
    assert not np.array_equal(a, b)


def test_generation_by_age_band(aged_model: tuple[LocalStore, str, ImageDataset]) -> None:
    store, model_id, _ = aged_model
    g = load_generator(store, model_id, device="cpu")
    b = g.sample(5, finding="A", gender="M", age_band="40-59", seed=1)
    assert b.age_band is not None and (b.age_band == 1).all() and (b.gender == 0).all()
    rows = b.label_rows()
    assert {r[AGE_BAND] for r in rows} == {"40-59"} and b.captions()[0].startswith("M/")
    # not given: drawn from the finding's training mix, and "B" exists only among 60+
    drawn = g.sample(40, finding="B", seed=2)
    assert drawn.age_band is not None and set(drawn.age_band.tolist()) == {2}
    with pytest.raises(LabelError, match=r"unknown age_band '90\+'.*0-39, 40-59, 60\+"):
        g.sample(1, age_band="90+")
    # labels.csv gains an age_band column for such a model
    import zipfile

    with zipfile.ZipFile(io.BytesIO(zip_bytes(b.images, rows, model_id, 1, 2))) as zf:
        header = zf.read("labels.csv").decode().splitlines()[0].split(",")
    assert header[:5] == ["file", "finding_labels", "gender", "view", AGE_BAND]
