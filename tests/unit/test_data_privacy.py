"""What a stored dataset says about patients (issue 13, data item): no stored byte (any label
array, the manifest with its ingest report) carries a raw patient identifier; ids and file keys
are salted hashes, and the way back to the source files is an opt-in local CSV.

The ingest report stored in the manifest keeps the last names of the CSV and image folder, never the
server (or user) path they were read from.

Before: the NIH ingest stored ``Patient ID`` verbatim, and every ingest kept the source file name
as ``image_index`` (NIH ``<patient>_<nnn>.png``, CheXpert ``patientNNNNN/...``, MIMIC
``p10/p10000032/s5.../...``), so each row named its patient; the ingest report in the manifest
quoted file names too. The scans below fail on that code.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import byo_layouts as L
import numpy as np
import pytest
from gdgan.cli.data import app
from gdgan.data.adapters import ingest_source_to_store
from gdgan.data.dataset import load_dataset
from gdgan.data.nih import ingest_nih_to_store
from gdgan.data.pseudonym import HASHED_KEY_RE
from gdgan.store import Manifest, open_store
from gdgan.store.local import LocalStore
from typer.testing import CliRunner

SALT = "test-salt"  # a fixed salt: the test is deterministic


@pytest.fixture(autouse=True)
def _salt(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from gdgan.settings import get_settings

    monkeypatch.setenv("GDGAN_PATIENT_ID_SALT", SALT)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _stored(store: LocalStore, m: Manifest) -> tuple[str, dict[str, np.ndarray]]:
    """The manifest's text and every label array, read back as stored."""
    text = store._get_bytes(store._key(m.id, "manifest.json")).decode()
    with np.load(io.BytesIO(store.get_bytes(m.id, "labels.npz")), allow_pickle=False) as z:
        return text, {k: z[k] for k in z.files}


def _folders(source: Path) -> set[str]:
    """The folder the data was read from, as given and resolved: a server or user path the stored
    ingest report must not keep (it keeps the files' last names only)."""
    return {str(source), str(source.resolve())}


def _assert_clean(root: Path, text: str, labels: dict[str, np.ndarray], tokens: set[str]) -> None:
    """No token in the manifest, in any string cell, nor (UTF-8 or NumPy's UTF-32) in any stored file."""
    hits = {t for t in tokens if t in text}
    assert not hits, f"manifest names {sorted(hits)[:3]}"
    for name, col in labels.items():
        if col.dtype.kind == "U":
            cells = " ".join(col.ravel().tolist())
            hits = {t for t in tokens if t in cells}
            assert not hits, f"column {name} names {sorted(hits)[:3]}"
    blob = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "images.npy")
    for t in tokens:
        assert t.encode() not in blob and t.encode("utf-32-le") not in blob, t


def test_stored_nih_dataset_has_no_raw_patient_ids(nih_sample: Path, tmp_path: Path) -> None:
    csv_path = next(nih_sample.glob("Data_Entry_2017*.csv"))
    with open(csv_path, newline="") as fh:
        rows = {r["Image Index"]: r for r in csv.DictReader(fh)}
    raw_ids = {int(r["Patient ID"]) for r in rows.values()}
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    key_map = tmp_path / "private" / "keys.csv"
    m = ingest_nih_to_store(
        csv_path, nih_sample / "images", 32, store, workers=1, resume_dir=tmp_path / "w", key_map=key_map
    )
    assert m is not None
    text, labels = _stored(store, m)
    # NIH's ids as its file names spell them (8 digits) and the file names themselves
    tokens = {f"{p:08d}" for p in raw_ids} | set(rows)
    assert not {f"{p:08d}" for p in raw_ids} & set(re.findall(r"\d{8}", text))
    _assert_clean(tmp_path / "store", text, labels, tokens | _folders(nih_sample))
    assert m.meta["ingest"]["csv_path"] == csv_path.name and m.meta["ingest"]["images_root"] == "images"
    assert all(HASHED_KEY_RE.match(k) for k in labels["image_index"].tolist())
    assert len(set(labels["image_index"].tolist())) == len(labels["image_index"])

    # the opt-in map (outside the store, owner-only) leads from each stored key back to its row
    with open(key_map, newline="") as fh:
        back = {r["image_index"]: r["source_key"] for r in csv.DictReader(fh)}
    assert (key_map.stat().st_mode & 0o777) == 0o600
    assert set(back) == set(labels["image_index"].tolist())
    raw = np.array([int(rows[back[k]]["Patient ID"]) for k in labels["image_index"]])
    pid = labels["patient_id"]
    assert not np.isin(pid, list(raw_ids)).any()
    # same patient <=> same hash, and no integer column is a copy of the raw ids
    assert np.array_equal(raw[:, None] == raw[None, :], pid[:, None] == pid[None, :])
    for name, col in labels.items():
        if col.dtype.kind in "iu" and col.ndim == 1:
            assert not np.array_equal(col.astype(np.int64), raw), name
    assert "hmac-sha256" in m.config["patient_id"] and "hmac-sha256" in m.meta["image_index"]
    # loading and saving again (a derived dataset) keeps the hashes as they are
    again = load_dataset(store, m.id).save(store)
    assert np.array_equal(_stored(store, again)[1]["image_index"], labels["image_index"])


@pytest.mark.parametrize("source", ["chexpert", "mimic"])
def test_stored_adapter_dataset_has_no_raw_patient_ids(tmp_path: Path, source: str) -> None:
    layout = getattr(L, source)(tmp_path / "src")
    opts = {k: str(v) for k, v in layout.items()}
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    m = ingest_source_to_store(source, 32, opts, store, workers=1, resume_dir=tmp_path / "w")
    assert m is not None
    text, labels = _stored(store, m)
    # every identifier the fixture wrote: CheXpert's patientNNNNN folders; MIMIC's subject ids
    # (bare and as pNNNNNNNN folders), study ids and DICOM ids
    if source == "chexpert":
        tokens = {f"patient{i:05d}" for i in (*range(8), 50, 51, 99, 64541, 64542, 64543)}
        assert m.meta["ingest"]["duplicate_rows"]["count"] == 1  # a reported file, by line only
    else:
        tokens = {f"1000{i:04d}" for i in (*range(6), 9)} | {f"5000{i:04d}" for i in range(6)}
        tokens |= {f"dcm{i:02d}-aa" for i in range(6)} | {"lat00-bb", "nolab-cc"}
    _assert_clean(tmp_path / "store", text, labels, tokens | _folders(tmp_path / "src"))
    report = m.meta["ingest"]
    assert report["csv_path"] and "/" not in report["csv_path"] + report["images_root"], report
    assert all(HASHED_KEY_RE.match(k) for k in labels["image_index"].tolist())
    assert len(labels["image_index"]) >= 6


def test_cli_writes_the_key_map_only_on_request(tmp_path: Path) -> None:
    layout = L.chexpert(tmp_path / "src")
    store = (tmp_path / "s").as_uri()
    args = ["ingest-chexpert", "--csv", str(layout["csv"]), "--images", str(layout["images"]),
            "--size", "32", "--workers", "1", "--store", store, "--json"]  # fmt: skip
    runner = CliRunner()
    plain = runner.invoke(app, args)
    assert plain.exit_code == 0, plain.stderr
    key_map = tmp_path / "keys.csv"
    res = runner.invoke(app, [*args, "--write-key-map", str(key_map)])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    ds = load_dataset(open_store(store), out["id"])
    with open(key_map, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["dataset_id"] for r in rows} == {out["id"]}
    back = {r["image_index"]: r["source_key"] for r in rows}
    assert set(back) == set(ds.labels["image_index"].tolist())
    assert all(v.startswith("CheXpert-v1.0-small/") and "/patient" in v for v in back.values())
    # the same salt gives the same stored keys on a rerun (a stable join key across ingests)
    first = json.loads(plain.stdout.strip().splitlines()[-1])
    assert np.array_equal(
        load_dataset(open_store(store), first["id"]).labels["image_index"], ds.labels["image_index"]
    )
    assert not list((tmp_path / "s").rglob("keys.csv"))
