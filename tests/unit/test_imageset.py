"""gdgan.imageset: one zip/folder layout and label columns for the generation service, the
generation job and ``gdgan sample``; large sets stream to the store with bounded memory."""

from __future__ import annotations

import csv
import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from gdgan.imageset import (
    COLUMNS,
    LABELS_FILE,
    ZIP_FILE,
    chunk_seed,
    folder_writer,
    image_name,
    write_synthetic_set,
    zip_bytes,
)
from gdgan.jobs.records import job_artifact_id
from gdgan.labels import encode_findings
from gdgan.models.gdgan import GanConfig, build_stage1, build_stage2
from gdgan.progress import Cancelled
from gdgan.store import ArtifactStore, Manifest
from gdgan.training.sampling import LoadedGenerator
from PIL import Image

MIX = {"Cardiomegaly": {"M/PA": 1, "M/AP": 1, "F/PA": 1, "F/AP": 1}}


@pytest.fixture(scope="module")
def gen() -> LoadedGenerator:
    """An untrained 32-px GDGAN: noise-like images barely compress, the worst case for size."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = GanConfig(size=32, ngf=8, ndf=8)
    return LoadedGenerator(
        "gdgan-20260101-0000000000", "gdgan", cfg, MIX, g1=build_stage1(cfg)[0], g2=build_stage2(cfg)[0]
    )


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_zip_layout_columns_and_fixed_bytes(gen: LoadedGenerator) -> None:
    b = gen.sample(3, finding=["Cardiomegaly", "Edema"], gender="F", seed=5)
    images, rows_in = b.images, b.label_rows()
    a = zip_bytes(images, rows_in, gen.model_id, b.seed, 2)
    assert a == zip_bytes(images, rows_in, gen.model_id, b.seed, 2)  # no clock inside
    with zipfile.ZipFile(io.BytesIO(a)) as zf:
        assert zf.namelist() == ["img_000000.png", "img_000001.png", "img_000002.png", LABELS_FILE]
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        rows = _rows(zf.read(LABELS_FILE))
        assert np.array_equal(decode_png(zf.read("img_000001.png")), images[1])
    assert tuple(rows[0]) == COLUMNS
    assert rows[0] == {
        "file": "img_000000.png",
        "finding_labels": "Cardiomegaly|Edema",
        "gender": "F",
        "view": rows[0]["view"],
        "model_id": gen.model_id,
        "seed": "5",
        "stage": "2",
    }
    assert rows[0]["view"] in ("PA", "AP")
    assert encode_findings(rows[2]["finding_labels"]).sum() == 2


def test_folder_has_the_same_layout(gen: LoadedGenerator, tmp_path: Path) -> None:
    batch = gen.sample(4, finding="No Finding", view="AP", seed=1, stage=1)
    with folder_writer(tmp_path / "out", gen.model_id, batch.seed, 1) as w:
        w.add_batch(batch)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [image_name(i) for i in range(4)] + [LABELS_FILE]
    rows = _rows((tmp_path / "out" / LABELS_FILE).read_bytes())
    assert tuple(rows[0]) == COLUMNS
    assert all(r["finding_labels"] == "No Finding" and r["view"] == "AP" and r["stage"] == "1" for r in rows)


@pytest.fixture(scope="module")
def gen64() -> LoadedGenerator:
    torch.manual_seed(1)
    cfg = GanConfig(size=64, ngf=8, ndf=8)
    return LoadedGenerator(
        "gdgan-20260101-0000000001", "gdgan", cfg, MIX, g1=build_stage1(cfg)[0], g2=build_stage2(cfg)[0]
    )


def _check_stored_set(store: ArtifactStore, m: Manifest, gen: LoadedGenerator, n: int, chunk: int) -> None:
    path = store.fetch(m.id, ZIP_FILE)  # sha256-verified
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert len(names) == n + 1 and names[-1] == LABELS_FILE
        rows = _rows(zf.read(LABELS_FILE))
        assert zf.read(LABELS_FILE) == store.get_bytes(m.id, LABELS_FILE)
        again = gen.sample(chunk, finding="Cardiomegaly", seed=chunk_seed(9, 2 * chunk)).images
        assert np.array_equal(decode_png(zf.read(image_name(2 * chunk + 7))), again[7])
    assert len(rows) == n and {r["finding_labels"] for r in rows} == {"Cardiomegaly"}
    assert m.kind == "synthetic" and m.parents == [gen.model_id]


def test_large_set_streams_with_bounded_memory(gen64: LoadedGenerator, local_store: ArtifactStore) -> None:
    """Peak Python memory (tracemalloc) stays far below the zip: it is one chunk of images plus
    ~0.5 kB of zip directory and CSV row per image. The old job held the whole zip in memory twice
    (a BytesIO and its getvalue() copy), a peak of at least 2x the zip; this fails on it."""
    n, chunk = 6000, 200
    gen64.sample(2, seed=0)  # first-call allocations (lazy imports, caches) are not the writer's
    done: list[int] = []
    tracemalloc.start()
    try:
        m = write_synthetic_set(
            local_store,
            gen64,
            n,
            finding="Cardiomegaly",
            seed=9,
            chunk=chunk,
            progress=lambda p: done.append(p.step),
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = m.files[ZIP_FILE].size
    assert size > 20_000_000  # ~4 kB per noise-like 64-px PNG
    assert peak < size / 3, f"peak {peak} B while writing a {size} B zip"
    assert done[-1] == n
    _check_stored_set(local_store, m, gen64, n, chunk)


def test_set_uploads_to_s3_in_parts(gen64: LoadedGenerator, s3_store: ArtifactStore) -> None:
    """A zip above S3's 5 MiB part size goes up as a multipart upload from the temporary file."""
    n, chunk = 1500, 250
    m = write_synthetic_set(s3_store, gen64, n, finding="Cardiomegaly", seed=9, chunk=chunk)
    assert m.files[ZIP_FILE].size > 5 * 2**20
    _check_stored_set(s3_store, m, gen64, n, chunk)


def test_a_set_without_seed_records_the_one_it_drew(gen: LoadedGenerator, local_store: ArtifactStore) -> None:
    m = write_synthetic_set(local_store, gen, 3, chunk=2)
    seed = m.meta["seed"]
    assert isinstance(seed, int)
    with zipfile.ZipFile(local_store.fetch(m.id, ZIP_FILE)) as zf:
        assert {r["seed"] for r in _rows(zf.read(LABELS_FILE))} == {str(seed)}
        again = gen.sample(1, seed=chunk_seed(seed, 2)).images[0]
        assert np.array_equal(decode_png(zf.read(image_name(2))), again)


def test_stop_flag_commits_nothing(gen: LoadedGenerator, local_store: ArtifactStore) -> None:
    calls = iter(range(100))
    with pytest.raises(Cancelled, match="after 64 of 1000"):
        write_synthetic_set(local_store, gen, 1000, chunk=32, should_stop=lambda: next(calls) >= 2)
    assert local_store.list() == []


def test_a_redelivered_job_finds_its_set_instead_of_writing_a_second(
    gen: LoadedGenerator, local_store: ArtifactStore
) -> None:
    """The generate job's worker died (or Redis went) after the commit, before the job recorded
    it: the redelivered task, with the job's fixed id, returns the stored set without generating."""
    aid = job_artifact_id("synthetic", "job-generate-20261202-0123456789")
    first = write_synthetic_set(local_store, gen, 3, seed=4, chunk=2, artifact_id=aid)
    again = write_synthetic_set(
        local_store, gen, 3, seed=4, chunk=2, artifact_id=aid, should_stop=lambda: True
    )
    assert first.id == again.id == aid and again.meta["seed"] == 4
    assert [m.id for m in local_store.list("synthetic")] == [aid]
