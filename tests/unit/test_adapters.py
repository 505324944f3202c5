"""Bring-your-own-data adapters on synthetic datasets in each publisher's real layout.

Checked against closed forms and planted facts: decoded pixel values (DICOM modality LUT, VOI
window, MONOCHROME1, bit depth; 16-bit PNGs), CheXpert's uncertainty policies, VinDr's reader
merges, the publisher's split, salted patient hashes (no identifier in any stored byte), and every
bad-input case counted and reported without failing the ingest.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import byo_layouts as L
import numpy as np
import pytest
from gdgan.data.adapters import AdapterError, ingest_source
from gdgan.data.adapters.vindr import merge_readers
from gdgan.data.dataset import load_dataset
from gdgan.data.dicom import decode_dicom, read_header, window_linear
from gdgan.store.local import LocalStore

SALT = "test-salt"
KW = {"workers": 1, "salt": SALT}


def _ingest(tmp: Path, source: str, opts: dict, size: int = 32, **kw: object):  # type: ignore[no-untyped-def]
    return ingest_source(source, size, opts, resume_dir=tmp / "work", **KW, **kw)


def _by_key(ds) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {k: i for i, k in enumerate(ds.labels["image_index"].tolist())}


def _hid(raw: str) -> int:
    digest = hmac.new(SALT.encode(), raw.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _expected_bits(v: float, bits: int) -> int:
    return int(np.rint(v / (2**bits - 1) * 255))


# ----------------------------------------------------------------------------- DICOM ---
def test_window_linear_closed_form() -> None:
    x = np.array([-10.0, 0.0, 499.5, 500.0, 1000.0, 2000.0])
    c, w = 500.0, 1001.0
    want = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
    want[x <= c - 0.5 - (w - 1) / 2] = 0
    assert np.allclose(window_linear(x, c, w), want)


@pytest.mark.parametrize("syntax", ["explicit", "rle", "j2k"])
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_gradient_pixels_match_the_closed_form(tmp_path: Path, syntax: str, photometric: str) -> None:
    stored = (np.arange(32)[None, :] * 120 + np.arange(32)[:, None] * 7).astype(np.uint16)  # < 4096
    p = L.write_dicom(tmp_path / "g.dcm", stored, photometric=photometric, bits=12, syntax=syntax)
    img, mode, wh = decode_dicom(p, 32)  # same size: no resampling, the values are exact
    y = stored / 4095.0
    want = np.rint(255 * (1 - y if photometric == "MONOCHROME1" else y)).astype(np.uint8)
    assert wh == (32, 32) and mode == f"DICOM {photometric} 12-bit"
    assert np.abs(img.astype(int) - want).max() <= 1 and np.mean(img == want) > 0.95
    assert img[0, -1] > img[0, 0] if photometric == "MONOCHROME2" else img[0, -1] < img[0, 0]


def test_dicom_rescale_and_window(tmp_path: Path) -> None:
    stored = np.tile(np.arange(0, 4096, 128, dtype=np.uint16), (32, 1))
    p = L.write_dicom(tmp_path / "w.dcm", stored, slope=2.0, intercept=-100.0, window=(2500.0, 2001.0))
    img, _, _ = decode_dicom(p, 32)
    want = np.rint(255 * window_linear(stored * 2.0 - 100.0, 2500.0, 2001.0)).astype(np.uint8)
    assert np.abs(img.astype(int) - want).max() <= 1
    # without a window: the full range the rescaled 12-bit values allow
    q = L.write_dicom(tmp_path / "r.dcm", stored, slope=2.0, intercept=-100.0)
    img2, _, _ = decode_dicom(q, 32)
    assert np.abs(img2.astype(int) - np.rint(stored / 4095 * 255)).max() <= 1
    h = read_header(q)
    assert h.sex == "F" and h.view == "PA" and h.pixel_spacing == (0.143, 0.143) and h.bits_stored == 12


# ---------------------------------------------------------------------------- VinDr ---
def test_merge_readers_majority_and_any() -> None:
    v = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 0]])
    assert merge_readers(v, "majority").tolist() == [1, 0, 0]
    assert merge_readers(v, "any").tolist() == [1, 0, 1]
    assert merge_readers(np.array([[1, 0], [0, 0]]), "majority").tolist() == [0, 0]  # a tie is not a majority


def test_vindr_dicom_end_to_end(tmp_path: Path) -> None:
    opts = {k: str(v) for k, v in L.vindr(tmp_path / "v").items()}
    ds, rep = _ingest(tmp_path, "vindr", opts)
    assert ds.schema.findings == tuple(L.VINDR_FINDINGS) and ds.schema.general == ("gender", "view")
    k = _by_key(ds)
    assert set(k) == {"train/a1", "train/b2", "train/c3", "test/t1"}  # d4: no sex, lateral -> skipped
    px = {key: int(ds.images[i].mean().round()) for key, i in k.items()}
    assert px["train/a1"] == int(np.rint(255 * (1 - 1000 / 4095)))  # MONOCHROME1
    assert px["train/b2"] == int(np.rint(255 * window_linear(np.array(1500 * 2.0 - 100), 2500, 2001)))  # RLE
    assert px["train/c3"] == _expected_bits(2000, 12)  # JPEG 2000
    assert px["test/t1"] == _expected_bits(3000, 12)
    f = ds.labels["findings"]
    assert f[k["train/a1"]].tolist() == [0, 1, 0, 0, 0]  # 2 of 3 readers
    assert f[k["train/b2"]].tolist() == [0, 0, 0, 0, 0]  # 1 of 3
    assert f[k["train/c3"]].tolist() == [1, 1, 0, 0, 0]
    assert ds.labels["official_split"][k["test/t1"]] == 2 and ds.labels["official_split"][k["train/a1"]] == 1
    assert ds.labels["gender"][k["train/c3"]] == 0 and ds.labels["view"][k["train/c3"]] == 1  # M, AP
    assert np.allclose(ds.labels["pixel_spacing"], 0.143)
    assert ds.labels["patient_id"][k["train/a1"]] == _hid("dicom:VINDR-SECRET-0")
    assert rep.missing_files.count == 1 and rep.unknown_labels.count == 1 and rep.missing_general.count == 1
    assert rep.notes["merge"] == "majority" and rep.notes["dicom_files"] == 5
    anyds, _ = _ingest(tmp_path, "vindr", {**opts, "merge": "any"})
    fa = anyds.labels["findings"][_by_key(anyds)["train/a1"]]
    assert fa.tolist() == [0, 1, 1, 0, 0]
    assert anyds.labels["findings"][_by_key(anyds)["train/b2"]].tolist() == [0, 0, 0, 1, 0]


def test_no_patient_identifier_is_stored(tmp_path: Path) -> None:
    opts = {k: str(v) for k, v in L.vindr(tmp_path / "v").items()}
    ds, rep = _ingest(tmp_path, "vindr", opts)
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    m = ds.save(store, meta={"ingest": rep.to_dict()})
    blob = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert b"VINDR-SECRET" not in blob and b"Doe^Jane" not in blob and b"D\x00o\x00e" not in blob
    back = load_dataset(store, m.id)
    assert back.schema == ds.schema and back.labels["patient_id"].dtype == np.int32
    # a fresh random salt (none set) gives other ids: a stored id cannot be recomputed from a guess
    other, _ = ingest_source("vindr", 32, opts, resume_dir=tmp_path / "w2", workers=1)
    assert not np.array_equal(other.labels["patient_id"], ds.labels["patient_id"])


# ------------------------------------------------------------------------- CheXpert ---
@pytest.mark.parametrize(("policy", "edema", "n"), [("ones", 1, 11), ("zeros", 0, 11), ("ignore", None, 10)])
def test_chexpert_uncertainty_policies(tmp_path: Path, policy: str, edema: int | None, n: int) -> None:
    opts = {k: str(v) for k, v in L.chexpert(tmp_path / "c").items()}
    ds, rep = _ingest(tmp_path, "chexpert", {**opts, "uncertainty": policy})
    assert len(ds) == n and ds.config["uncertainty"] == policy and rep.notes["uncertainty"] == policy
    assert ds.schema.general == ("gender", "view") and "No Finding" not in ds.schema.findings
    assert ds.schema.findings[1] == "Cardiomegaly" and len(ds.schema.findings) == 13
    k = _by_key(ds)
    p3 = "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg"
    if edema is None:
        assert p3 not in k and rep.excluded.count == 2  # the lateral and the uncertain image
    else:
        assert ds.labels["findings"][k[p3], ds.schema.finding_index("Edema")] == edema
    assert rep.duplicate_rows.count == 1 and rep.missing_files.count == 1
    assert rep.unknown_labels.count == 1 and "'2'" in rep.unknown_labels.examples[0]
    assert rep.missing_general.count == 1  # sex Unknown
    assert (ds.labels["official_split"] == 2).sum() == 3  # valid.csv is the test part
    # Cardiomegaly on patients 1, 3, 5, 7 (3 is left out under "ignore")
    assert ds.labels["findings"][:, 1].sum() == (3 if edema is None else 4)


def test_chexpert_laterals_kept_drop_the_view_label(tmp_path: Path) -> None:
    opts = {k: str(v) for k, v in L.chexpert(tmp_path / "c").items()}
    ds, rep = _ingest(tmp_path, "chexpert", {**opts, "laterals": "keep"})
    assert ds.schema.general == ("gender",) and len(ds) == 12 and rep.excluded.count == 0
    k = _by_key(ds)
    lat = "CheXpert-v1.0-small/train/patient00000/study1/view2_lateral.jpg"
    front = "CheXpert-v1.0-small/train/patient00000/study1/view1_frontal.jpg"
    assert ds.labels["patient_id"][k[lat]] == ds.labels["patient_id"][k[front]] == _hid("patient00000")
    assert ds.general().shape == (12, 1)


def test_chexpert_bad_options_and_columns(tmp_path: Path) -> None:
    opts = {k: str(v) for k, v in L.chexpert(tmp_path / "c").items()}
    with pytest.raises(AdapterError, match="uncertainty"):
        _ingest(tmp_path, "chexpert", {**opts, "uncertainty": "maybe"})
    bad = L.write_csv(tmp_path / "bad.csv", ["Path", "Sex"], [["x.jpg", "Male"]])
    with pytest.raises(AdapterError, match=r"lacks column.*'Age'"):
        _ingest(tmp_path, "chexpert", {**opts, "csv": str(bad)})


# ---------------------------------------------------------------------------- MIMIC ---
def test_mimic_joins_metadata_labels_sex_and_split(tmp_path: Path) -> None:
    opts = {k: str(v) for k, v in L.mimic(tmp_path / "m").items()}
    ds, rep = _ingest(tmp_path, "mimic", opts)
    assert len(ds) == 6 and ds.schema.general == ("gender", "view")
    assert rep.excluded.count == 1 and rep.unknown_labels.count == 1
    order = np.argsort(ds.labels["image_index"])
    assert ds.labels["gender"][order].tolist() == [1, 1, 1, 0, 0, 0]
    assert ds.labels["view"][order].tolist() == [0, 1, 0, 1, 0, 1]
    assert ds.labels["findings"][order, ds.schema.finding_index("Edema")].tolist() == [0, 1, 0, 1, 0, 1]
    assert ds.labels["official_split"][order].tolist() == [1, 1, 1, 1, 1, 2]
    no_sex, _ = _ingest(tmp_path, "mimic", {**opts, "patients": None})
    assert no_sex.schema.general == ("view",)


# ------------------------------------------------------------------------- PadChest ---
def test_padchest_label_lists_projection_and_16bit_pngs(tmp_path: Path) -> None:
    opts = {k: str(v) for k, v in L.padchest(tmp_path / "p").items()}
    ds, rep = _ingest(tmp_path, "padchest", opts)
    assert ds.schema.findings == ("cardiomegaly", "pleural effusion") and ds.schema.general == (
        "gender",
        "view",
    )
    k = _by_key(ds)
    assert set(k) == {"img_000.png", "img_001.png", "img_002.png", "img_003.png"}
    assert ds.labels["findings"][k["img_002.png"]].tolist() == [1, 1]
    assert ds.labels["findings"][k["img_000.png"]].tolist() == [0, 0]  # normal
    assert ds.labels["view"][k["img_002.png"]] == 1  # AP_horizontal -> AP
    for i in range(4):  # 16-bit values scaled by the bit depth each image really uses
        v = 1000 * (i + 1)
        bits = int(np.ceil(np.log2(v + 1)))
        assert int(ds.images[k[f"img_{i:03d}.png"]].mean().round()) == _expected_bits(v, bits)
    assert rep.excluded.count == 2 and rep.unknown_labels.count == 1 and rep.missing_general.count == 1
    assert rep.source_modes.get("I;16", 0) + rep.source_modes.get("I", 0) == 4
    sub, _ = _ingest(tmp_path, "padchest", {**opts, "findings": ["pleural effusion"]})
    assert sub.schema.findings == ("pleural effusion",)


# --------------------------------------------------------------------- generic CSV ---
def test_generic_csv_by_flags_mapping_with_bad_files(tmp_path: Path) -> None:
    opts = {k: str(v) for k, v in L.generic_csv(tmp_path / "g").items()}
    mapping = {"path": "file", "findings": {"list": {"column": "labels"}}, "sex": "Sex", "view": "Projection",
               "patient": "subject", "split": "fold"}  # fmt: skip
    ds, rep = _ingest(tmp_path, "csv", {**opts, "mapping": mapping})
    assert ds.schema.findings == ("A", "B") and ds.schema.general == ("gender", "view")
    assert len(ds) == 7 and rep.corrupt_files.count == 1 and rep.missing_files.count == 1
    assert rep.duplicate_rows.count == 1 and rep.non_square == 6 and "RGB" in rep.source_modes
    k = _by_key(ds)
    assert ds.labels["findings"][k["imgs/x0.png"]].tolist() == [1, 1]
    assert ds.labels["findings"][k["imgs/x1.png"]].tolist() == [0, 0]
    assert ds.labels["official_split"][k["imgs/x5.png"]] == 2
    assert (
        ds.labels["patient_id"][k["imgs/x0.png"]]
        == ds.labels["patient_id"][k["imgs/x1.png"]]
        == _hid("csv:S0")
    )
    assert int(ds.images[k["imgs/x3.png"]].mean().round()) == 120


def test_generic_csv_yaml_mapping_with_value_maps(tmp_path: Path) -> None:
    opts = {k: str(v) for k, v in L.generic_csv(tmp_path / "g").items()}
    y = tmp_path / "map.yaml"
    y.write_text(
        "path: file\nfindings:\n  columns: {Cardiomegaly: cardio}\n"
        "sex: {column: Sex, values: {Male: M, Female: F}}\n"
    )
    ds, rep = _ingest(tmp_path, "csv", {**opts, "mapping_file": str(y)})
    assert ds.schema.findings == ("Cardiomegaly",) and ds.schema.general == ("gender",)
    assert rep.unknown_labels.count == 1 and "'maybe'" in rep.unknown_labels.examples[0]
    k = _by_key(ds)
    assert ds.labels["findings"][k["imgs/x3.png"], 0] == 1 and ds.labels["gender"][k["imgs/x1.png"]] == 1
    y.write_text("path: file\nfindings: {list: {column: labels}, columns: {A: cardio}}\n")
    with pytest.raises(AdapterError, match="exactly one of 'list' or 'columns'"):
        _ingest(tmp_path, "csv", {**opts, "mapping_file": str(y)})


# -------------------------------------------------------------------------- folders ---
def test_folder_tree_keeps_split_and_has_no_general_labels(tmp_path: Path) -> None:
    L.folder(tmp_path / "f")
    ds, _ = _ingest(tmp_path, "folder", {"root": str(tmp_path / "f")})
    assert ds.schema.findings == ("Cardiomegaly", "Effusion") and ds.schema.general == ()
    assert len(ds) == 18 and ds.general().shape == (18, 0)
    assert (ds.labels["official_split"] == 2).sum() == 6 and (ds.labels["official_split"] == 1).sum() == 12
    assert (ds.labels["findings"].sum(axis=1) == 0).sum() == 6  # the "No Finding" folders
    assert len(np.unique(ds.labels["patient_id"])) == 18  # one patient per image


def test_folder_with_dicom_and_true_false_classes(tmp_path: Path) -> None:
    L.folder(tmp_path / "f", dicom=True)
    ds, rep = _ingest(tmp_path, "folder", {"root": str(tmp_path / "f")})
    assert rep.notes["dicom_files"] == 6 and ds.schema.general == ()  # 6 of 18 have sex: < half
    forced, rep2 = _ingest(tmp_path, "folder", {"root": str(tmp_path / "f"), "general": ("gender", "view")})
    assert (
        len(forced) == 6 and rep2.missing_general.count == 12 and forced.schema.general == ("gender", "view")
    )
    for cls, n in (("true", 3), ("false", 2)):
        for i in range(n):
            L.write_png(tmp_path / "tf" / cls / f"{cls}{i}.png", np.full((32, 32), 50, np.uint8))
    tf, _ = _ingest(tmp_path, "folder", {"root": str(tmp_path / "tf"), "finding": "Cardiomegaly"})
    assert tf.schema.findings == ("Cardiomegaly",) and int(tf.labels["findings"].sum()) == 3
    L.write_png(tmp_path / "tf" / "maybe" / "m.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(AdapterError, match="'maybe'"):
        _ingest(tmp_path, "folder", {"root": str(tmp_path / "tf"), "finding": "Cardiomegaly"})


def test_everything_unusable_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "e" / "cls").mkdir(parents=True)
    (tmp_path / "e" / "cls" / "x.png").write_bytes(b"junk")
    with pytest.raises(AdapterError, match=r"(?s)no usable images.*corrupt files: 1"):
        _ingest(tmp_path, "folder", {"root": str(tmp_path / "e")})


def test_vindr_box_annotation_format_gives_the_same_labels(tmp_path: Path) -> None:
    """annotations_train.csv / Kaggle's train.csv: one row per (image, reader, box) with a class name."""
    opts = {k: str(v) for k, v in L.vindr(tmp_path / "v").items()}
    rows = []
    for iid, votes in L.VINDR_VOTES.items():
        for r, vv in enumerate(votes):
            names = [n for n, x in zip(L.VINDR_FINDINGS, vv) if x] or ["No finding"]
            for n in names:  # a second box of the same class changes nothing
                rows += [
                    [
                        iid,
                        n,
                        L.VINDR_FINDINGS.index(n) if n in L.VINDR_FINDINGS else 14,
                        f"R{r + 1}",
                        1,
                        2,
                        3,
                        4,
                    ]
                ] * 2
    hdr = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
    long = L.write_csv(tmp_path / "train.csv", hdr, rows)
    for merge in ("majority", "any"):
        wide, _ = _ingest(tmp_path, "vindr", {**opts, "test_labels": None, "merge": merge})
        boxes, rep = _ingest(
            tmp_path, "vindr", {**opts, "labels": str(long), "test_labels": None, "merge": merge}
        )
        assert boxes.schema.findings == tuple(f for f in L.VINDR_FINDINGS if any(f in r for r in rows))
        kw, kb = _by_key(wide), _by_key(boxes)
        assert set(kw) == set(kb)
        for key in kw:
            want = dict(zip(wide.schema.findings, wide.labels["findings"][kw[key]].tolist()))
            got = dict(zip(boxes.schema.findings, boxes.labels["findings"][kb[key]].tolist()))
            assert got == {f: want[f] for f in boxes.schema.findings}, key
        assert rep.notes["readers_per_image"] == {"3": 4}
