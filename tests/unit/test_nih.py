"""NIH ChestX-ray14 adapter: real sample, phantom-written NIH folders with injected faults."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from gdgan.data import decode, phantom
from gdgan.data.nih import (
    REQUIRED_CSV_COLUMNS,
    DecodeError,
    IngestCancelled,
    NIHFormatError,
    decode_gray,
    ingest_nih,
)
from gdgan.data.splits import patient_split
from gdgan.labels import FINDINGS, encode_findings
from PIL import Image


# --- phantom in NIH format -------------------------------------------------------------------------
def _phantom(n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    return phantom, phantom.make_phantom(phantom.PhantomConfig(n=n, size=64, seed=seed))


@pytest.fixture(scope="module")
def nih_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """60 phantoms written as NIH ships them (images_00N/images/, 128 px, 25 per folder)."""
    phantom, ds = _phantom(60)
    out = tmp_path_factory.mktemp("nihfmt")
    phantom.write_nih_format(ds, out, layout="nih", write_size=128, per_folder=25)
    return out, ds


def _rows(csv_path: Path) -> tuple[list[str], list[list[str]]]:
    with open(csv_path, newline="") as fh:
        r = list(csv.reader(fh))
    return r[0], r[1:]


def _write_rows(csv_path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(csv_path, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])


def _path_of(root: Path, name: str) -> Path:
    return next(root.glob(f"images_*/images/{name}"))


@pytest.fixture
def faulty_folder(nih_folder: tuple[Path, object], tmp_path: Path) -> tuple[Path, object, dict[str, str]]:
    """A copy of the NIH folder with corrupt/missing/RGBA/16-bit files and malformed rows."""
    src, ds = nih_folder
    root = tmp_path / "nih"
    shutil.copytree(src, root)
    header, rows = _rows(root / "Data_Entry_2017.csv")
    col = {h: i for i, h in enumerate(header)}
    name = [r[col["Image Index"]] for r in rows]
    # Files: truncated PNG, garbage bytes, a deleted file.
    p = _path_of(root, name[3])
    p.write_bytes(p.read_bytes()[:200])
    _path_of(root, name[4]).write_bytes(b"this is not a png at all")
    _path_of(root, name[5]).unlink()
    # Modes: RGBA (opaque), 16-bit full range, 16-bit holding 12-bit data, palette.
    gray = {i: np.asarray(Image.open(_path_of(root, name[i]))) for i in (6, 7, 8, 9)}
    Image.fromarray(np.dstack([gray[6]] * 3 + [np.full_like(gray[6], 255)]), "RGBA").save(
        _path_of(root, name[6])
    )
    Image.fromarray(gray[7].astype(np.uint16) * 257).save(_path_of(root, name[7]))
    Image.fromarray(gray[8].astype(np.uint16) * 16).save(_path_of(root, name[8]))
    Image.fromarray(gray[9]).convert("P").save(_path_of(root, name[9]))
    # Rows: bad gender, bad view, unknown label, bad age, traversal name, short row, duplicate,
    # implausible age (kept), old-style age.
    bad = {
        10: ("Patient Gender", "X"),
        11: ("View Position", "LL"),
        12: ("Finding Labels", "Cardiomegally"),
        13: ("Patient Age", "abc"),
        14: ("Image Index", "../../etc/passwd.png"),
    }
    for i, (c, v) in bad.items():
        rows[i][col[c]] = v
    rows[15] = rows[15][:3]
    rows[20][col["Patient Age"]] = "414"
    rows[21][col["Patient Age"]] = "058Y"
    rows.append(list(rows[30]))  # duplicate
    _write_rows(root / "Data_Entry_2017.csv", header, rows)
    return root, ds, {"names": name, "gray": gray}  # type: ignore[dict-item]


def test_phantom_nih_folder_round_trip(nih_folder: tuple[Path, object], tmp_path: Path) -> None:
    root, ds = nih_folder
    out, rep = ingest_nih(root / "Data_Entry_2017.csv", root, 64, workers=2, resume_dir=tmp_path)
    assert rep.ingested == rep.rows == 60 and rep.skipped == 0
    assert rep.chunks_reused == 0
    for k in ("image_index", "follow_up", "gender", "view", "findings"):
        assert np.array_equal(out.labels[k], ds.labels[k]), k  # type: ignore[attr-defined]
    pid, raw = out.labels["patient_id"], ds.labels["patient_id"]  # type: ignore[attr-defined]
    assert np.array_equal(pid[:, None] == pid[None, :], raw[:, None] == raw[None, :])  # salted hash
    ages = ds.labels["age"]  # type: ignore[attr-defined]
    assert np.array_equal(out.labels["age"], np.where(ages >= 0, ages, -1))
    # 64 -> 128 (bicubic, by the writer) -> 64 (ours): close to the original pixels.
    err = np.abs(out.images.astype(int) - ds.images.astype(int))  # type: ignore[attr-defined]
    assert err.mean() < 3.0, err.mean()
    assert out.config["source"] == "nih" and out.config["size"] == 64
    assert list(tmp_path.iterdir()) == []  # work folder cleaned after success


def test_faults_are_reported_and_skipped(faulty_folder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, _ds, info = faulty_folder
    names = info["names"]
    out, rep = ingest_nih(root / "Data_Entry_2017.csv", root, 64, workers=2, resume_dir=tmp_path)
    assert rep.rows == 61
    assert rep.bad_rows.count == 6
    text = " ".join(rep.bad_rows.examples)
    assert "'X'" in text and "'LL'" in text and "'Cardiomegally'" in text and "'abc'" in text
    assert "passwd" in text  # (the 6th, short row, is counted; only 5 examples are kept)
    assert rep.duplicate_rows.count == 1 and names[30] in rep.duplicate_rows.examples[0]
    assert rep.missing_files.count == 1 and names[5] in rep.missing_files.examples[0]
    assert rep.corrupt_files.count == 2
    assert names[3] in rep.corrupt_files.examples[0] and names[4] in rep.corrupt_files.examples[1]
    assert rep.implausible_ages.count == 1 and "414" in rep.implausible_ages.examples[0]
    assert rep.ingested == 60 - 6 - 1 - 2 == len(out)
    got = set(out.labels["image_index"].tolist())
    for i in (3, 4, 5, 10, 11, 12, 13, 15):
        assert names[i] not in got
    assert rep.source_modes["RGBA"] == 1 and rep.source_modes["I;16"] == 2 and rep.source_modes["P"] == 1
    at = {n: i for i, n in enumerate(out.labels["image_index"].tolist())}
    assert out.labels["age"][at[names[20]]] == -1
    assert out.labels["age"][at[names[21]]] == 58
    # Odd modes decode to the same picture as the 8-bit grayscale they were made from.
    for i, tol in ((6, 0), (7, 1), (8, 1), (9, 0)):
        ref = np.asarray(Image.fromarray(info["gray"][i]).resize((64, 64), Image.Resampling.LANCZOS))
        diff = np.abs(out.images[at[names[i]]].astype(int) - ref.astype(int)).max()
        assert diff <= tol + 1, (i, diff)
    assert "corrupt files: 2" in rep.summary()
    d = rep.to_dict()
    assert d["corrupt_files"]["count"] == 2 and d["skipped"] == 61 - 51


def test_missing_required_columns_named(tmp_path: Path) -> None:
    csv_path = tmp_path / "Data_Entry_2017.csv"
    cols = [c for c in REQUIRED_CSV_COLUMNS if c not in ("View Position", "Patient ID")]
    _write_rows(csv_path, cols, [["x.png"] * len(cols)])
    (tmp_path / "images").mkdir()
    with pytest.raises(NIHFormatError, match="'Patient ID', 'View Position'"):
        ingest_nih(csv_path, tmp_path, 64, workers=1, resume_dir=tmp_path / "w")


def test_bad_paths_are_clear(tmp_path: Path) -> None:
    with pytest.raises(NIHFormatError, match="not found"):
        ingest_nih(tmp_path / "nope.csv", tmp_path, 64)
    with pytest.raises(NIHFormatError, match="Data_Entry_2017"):
        ingest_nih(tmp_path, tmp_path, 64)
    with pytest.raises(NIHFormatError, match="size"):
        ingest_nih(tmp_path, tmp_path, 65)


def test_resume_skips_finished_chunks(
    nih_folder: tuple[Path, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = nih_folder
    csv_path = root / "Data_Entry_2017.csv"
    full, _ = ingest_nih(csv_path, root, 64, workers=1, resume_dir=tmp_path / "ref", chunk_size=16)
    calls = {"n": 0}
    real = decode.decode_gray

    def counting(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(decode, "decode_gray", counting)
    work = tmp_path / "work"
    stops = iter([False, True])  # interrupt after the second chunk
    with pytest.raises(IngestCancelled, match="resume"):
        ingest_nih(
            csv_path, root, 64, workers=1, resume_dir=work, chunk_size=16, should_stop=lambda: next(stops)
        )
    assert calls["n"] == 32
    assert len(list(work.glob("*/chunk-*.npz"))) == 2
    seen = []
    out, rep = ingest_nih(csv_path, root, 64, workers=1, resume_dir=work, chunk_size=16, progress=seen.append)
    assert rep.chunks == 4 and rep.chunks_reused == 2
    assert calls["n"] == 32 + 28  # only the two unfinished chunks were decoded
    assert np.array_equal(out.images, full.images)
    assert seen[0].step == 32 and seen[-1].step == seen[-1].total == 60 and seen[-1].phase == "ingest"


def test_parallel_equals_serial(nih_folder: tuple[Path, object], tmp_path: Path) -> None:
    root, _ = nih_folder
    a, _ = ingest_nih(
        root / "Data_Entry_2017.csv", root, 32, workers=1, resume_dir=tmp_path / "a", chunk_size=8
    )
    b, rep = ingest_nih(
        root / "Data_Entry_2017.csv", root, 32, workers=2, resume_dir=tmp_path / "b", chunk_size=8
    )
    assert rep.workers == 2 and rep.chunks == 8
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.labels["image_index"], b.labels["image_index"])


def test_flat_layout_limit_and_official_lists(tmp_path: Path) -> None:
    phantom, ds = _phantom(40, seed=3)
    root = tmp_path / "flat"
    phantom.write_nih_format(ds, root, layout="flat")
    names = ds.labels["image_index"].tolist()
    pids = ds.labels["patient_id"]
    test_patients = set(np.unique(pids)[::4].tolist())
    test_names = [n for n, p in zip(names, pids) if p in test_patients]
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "test_list.txt").write_text("\n".join(test_names) + "\n")
    (lists / "train_val_list.txt").write_text("\n".join(n for n in names[:-1] if n not in test_names) + "\n")
    out, rep = ingest_nih(root, root, 64, workers=1, official_lists_dir=lists, resume_dir=tmp_path / "w")
    code = dict(zip(out.labels["image_index"].tolist(), out.labels["official_split"].tolist()))
    assert all(code[n] == 2 for n in test_names)
    assert rep.unlisted.count == (0 if names[-1] in test_names else 1)
    split = patient_split(out.labels["patient_id"], seed=0, official_split=out.labels["official_split"])
    assert set(out.labels["image_index"][split.test].tolist()) == set(test_names)
    # Raw images equal the PNGs (already 64 px: resize is the identity).
    assert np.array_equal(out.images, ds.images)
    lim, rep2 = ingest_nih(root, root, 64, workers=1, limit=7, resume_dir=tmp_path / "w2")
    assert len(lim) == 7 and rep2.ingested == 7
    (lists / "test_list.txt").unlink()
    with pytest.raises(NIHFormatError, match=r"test_list\.txt"):
        ingest_nih(root, root, 64, official_lists_dir=lists, resume_dir=tmp_path / "w3")


# --- decoding --------------------------------------------------------------------------------------
def test_decode_antialiases() -> None:
    """A 1-px checkerboard must come out mid-grey, not aliased into stripes or extremes."""
    board = ((np.indices((256, 256)).sum(0) % 2) * 255).astype(np.uint8)
    import io

    buf = io.BytesIO()
    Image.fromarray(board).save(buf, "PNG")
    img, mode, wh = decode_gray(buf.getvalue(), 64)
    assert mode == "L" and wh == (256, 256) and img.shape == (64, 64)
    assert abs(float(img.mean()) - 127.5) < 3 and float(img.std()) < 3


def test_decode_16bit_scaling_by_bit_depth() -> None:
    import io

    ramp = np.tile(np.linspace(0, 255, 64).round().astype(np.uint8), (64, 1))
    for factor, tol in ((257, 0), (16, 1), (1, 0)):  # 16-bit full range, 12-bit data, 8-bit values
        buf = io.BytesIO()
        Image.fromarray(ramp.astype(np.uint16) * factor).save(buf, "PNG")
        img, mode, _ = decode_gray(buf.getvalue(), 64)
        assert mode == "I;16"
        assert np.abs(img.astype(int) - ramp).max() <= tol, factor


def test_decode_errors() -> None:
    with pytest.raises(DecodeError, match="cannot decode"):
        decode_gray(b"garbage", 64)
    with pytest.raises(DecodeError, match="not found"):
        decode_gray(Path("/nonexistent/x.png"), 64)


# --- the real NIH sample ---------------------------------------------------------------------------
@pytest.mark.nih_sample
def test_real_nih_sample(nih_sample: Path, tmp_path: Path) -> None:
    root = nih_sample
    csv_path = next(root.glob("Data_Entry_2017*.csv"))
    out, rep = ingest_nih(csv_path, root / "images", 64, workers=2, resume_dir=tmp_path)
    assert rep.ingested == rep.rows == 970 and rep.skipped == 0
    assert rep.source_modes == {"L": 970}
    c = out.counts()
    assert c["patients"] == 260
    # Cardiomegaly per (gender, view) as documented with the sample (SOURCE.md).
    card = out.labels["findings"][:, FINDINGS.index("Cardiomegaly")] == 1
    g, v = out.labels["gender"], out.labels["view"]
    assert [int((card & (g == gi) & (v == vi)).sum()) for gi, vi in ((1, 1), (1, 0), (0, 1), (0, 0))] == [
        29,
        12,
        8,
        17,
    ]
    # Labels equal an independent read of the CSV.
    with open(csv_path, newline="") as fh:
        rows = {r["Image Index"]: r for r in csv.DictReader(fh)}
    # patient ids are salted hashes: equal exactly where NIH's ids are equal, never the raw id
    raw = np.array([int(rows[n]["Patient ID"]) for n in out.labels["image_index"]])
    hashed = out.labels["patient_id"]
    assert np.array_equal(raw[:, None] == raw[None, :], hashed[:, None] == hashed[None, :])
    for i in range(0, 970, 97):
        r = rows[out.labels["image_index"][i]]
        assert out.labels["age"][i] == int(r["Patient Age"])
        assert ("F" if g[i] else "M") == r["Patient Gender"]
        assert ("AP" if v[i] else "PA") == r["View Position"]
        assert np.array_equal(
            out.labels["findings"][i], encode_findings(r["Finding Labels"]).astype(np.uint8)
        )
        px = np.asarray(Image.open(root / "images" / out.labels["image_index"][i]).convert("L"))
        assert np.array_equal(out.images[i], px)  # already 64 px: decoded exactly


def test_ingest_to_store_and_cancel(nih_folder: tuple[Path, object], tmp_path: Path, local_store) -> None:  # type: ignore[no-untyped-def]
    from gdgan.data.dataset import load_dataset
    from gdgan.data.nih import ingest_nih_to_store

    root, _ = nih_folder
    csv_path = root / "Data_Entry_2017.csv"
    cancelled = ingest_nih_to_store(
        csv_path, root, 32, local_store, artifact_id="dataset-nih-1", workers=1, chunk_size=16,
        resume_dir=tmp_path, should_stop=lambda: True,
    )  # fmt: skip
    assert cancelled is None and not local_store.exists("dataset-nih-1")
    m = ingest_nih_to_store(
        csv_path,
        root,
        32,
        local_store,
        artifact_id="dataset-nih-1",
        workers=1,
        chunk_size=16,
        resume_dir=tmp_path,
    )
    assert m is not None and m.id == "dataset-nih-1"
    assert m.meta["ingest"]["ingested"] == 60 and m.meta["ingest"]["chunks_reused"] == 1
    assert load_dataset(local_store, m.id).images.shape == (60, 32, 32)


def test_cancel_with_threads_stops_promptly(nih_folder: tuple[Path, object], tmp_path: Path) -> None:
    import threading

    root, _ = nih_folder
    with pytest.raises(IngestCancelled):
        ingest_nih(
            root / "Data_Entry_2017.csv", root, 32, workers=2, chunk_size=4, resume_dir=tmp_path,
            should_stop=lambda: True,
        )  # fmt: skip
    assert not any(t.name.startswith("nih-decode") for t in threading.enumerate())
    finished = len(list(tmp_path.glob("*/chunk-*.npz")))
    assert 1 <= finished <= 4 < 15  # queued chunks were cancelled, not decoded


def test_decoding_releases_the_gil() -> None:
    """Why decoder threads scale: while one thread decodes a big PNG, Python code keeps running.

    If Pillow held the GIL, the main thread would stall for a whole decode (>= D); it may only
    pause for scheduling slices.
    """
    import io
    import threading
    import time

    rng = np.random.default_rng(0)
    big = (rng.random((3072, 3072)) * 60 + np.linspace(0, 190, 3072)[None, :]).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "PNG", compress_level=1)
    data = buf.getvalue()
    t0 = time.perf_counter()
    decode_gray(data, 64)
    one = time.perf_counter() - t0
    th = threading.Thread(target=lambda: [decode_gray(data, 64) for _ in range(2)])
    gaps, last = [], time.perf_counter()
    th.start()
    while th.is_alive():
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    th.join()
    assert max(gaps) < 0.5 * one, (max(gaps), one)
