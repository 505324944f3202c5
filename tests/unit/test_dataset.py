"""Dataset artifact: save/load round trip through the store, memory-mapped, validated columns."""

from __future__ import annotations

import numpy as np
import pytest
from gdgan.data.dataset import DatasetError, ImageDataset, load_dataset
from gdgan.data.pseudonym import key_hasher
from gdgan.labels import N_FINDINGS
from gdgan.store import ArtifactStore


def make_dataset(n: int = 20, size: int = 32, seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    findings = (rng.random((n, N_FINDINGS)) < 0.2).astype(np.uint8)
    return ImageDataset(
        images=rng.integers(0, 256, (n, size, size), dtype=np.uint8),
        labels={
            "image_index": np.array([f"{i:08d}_000.png" for i in range(n)]),
            "patient_id": (np.arange(n) // 3).astype(np.int32),
            "follow_up": (np.arange(n) % 3).astype(np.int32),
            "age": rng.integers(1, 90, n).astype(np.int16),
            "gender": rng.integers(0, 2, n).astype(np.uint8),
            "view": rng.integers(0, 2, n).astype(np.uint8),
            "findings": findings,
            "gt_ctr": rng.random(n).astype(np.float32),
        },
    )


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_save_load_round_trip(request: pytest.FixtureRequest, backend: str) -> None:
    store: ArtifactStore = request.getfixturevalue("local_store" if backend == "local" else "s3_store")
    ds = make_dataset()
    m = ds.save(store, config={"source": "test"}, meta={"note": "x"}, salt="s")
    assert m.kind == "dataset" and ds.id == m.id
    assert m.meta["n"] == 20 and m.meta["size"] == 32 and m.meta["note"] == "x"
    assert m.meta["counts"]["images"] == 20
    assert m.config["size"] == 32 and m.config["source"] == "test"
    back = load_dataset(store, m.id)
    assert isinstance(back.images, np.memmap)  # memory-mapped, not read eagerly
    assert np.array_equal(np.asarray(back.images), ds.images)
    assert set(back.labels) == set(ds.labels)
    # the source file keys are stored as salted hashes (they embed patient ids); the rest as is
    h, _ = key_hasher("s")
    assert back.labels["image_index"].tolist() == [h(k) for k in ds.labels["image_index"].tolist()]
    assert ds.labels["image_index"][0] == "00000000_000.png"  # the dataset in memory keeps its keys
    for k, v in ds.labels.items():
        if k != "image_index":
            assert np.array_equal(back.labels[k], v), k
            assert back.labels[k].dtype == v.dtype, k
    eager = load_dataset(store, m.id, mmap=False)
    assert not isinstance(eager.images, np.memmap)
    assert np.array_equal(eager.images, ds.images)


def test_general_detail_counts_subset() -> None:
    ds = make_dataset()
    g = ds.general()
    assert g.shape == (20, 2) and g.dtype == np.float32
    assert np.array_equal(g[:, 0], ds.labels["gender"].astype(np.float32))
    assert np.array_equal(g[:, 1], ds.labels["view"].astype(np.float32))
    assert ds.detail().shape == (20, N_FINDINGS)
    c = ds.counts()
    assert c["gender"]["M"] + c["gender"]["F"] == 20
    assert sum(c["group"].values()) == 20
    assert c["findings"]["Cardiomegaly"] == int(ds.labels["findings"][:, 1].sum())
    assert c["no_finding"] == int((ds.labels["findings"].sum(1) == 0).sum())
    assert c["patients"] == 7
    sub = ds.subset(np.array([0, 5, 7]))
    assert len(sub) == 3 and np.array_equal(sub.images[1], ds.images[5])
    assert sub.labels["image_index"][2] == ds.labels["image_index"][7]


def test_validation_errors_name_the_column() -> None:
    ds = make_dataset()
    labels = dict(ds.labels)
    del labels["view"]
    with pytest.raises(DatasetError, match="'view'"):
        ImageDataset(ds.images, labels)
    labels = dict(ds.labels, age=ds.labels["age"][:-1])
    with pytest.raises(DatasetError, match="'age'"):
        ImageDataset(ds.images, labels)
    with pytest.raises(DatasetError, match="uint8"):
        ImageDataset(ds.images.astype(np.float32), ds.labels)


def test_loading_a_non_dataset_is_an_error(local_store: ArtifactStore) -> None:
    with local_store.writer("gdgan") as w:
        w.put_bytes("x.bin", b"x")
        m = w.commit()
    with pytest.raises(DatasetError, match="not a dataset"):
        load_dataset(local_store, m.id)


def test_tampered_images_detected(local_store: ArtifactStore) -> None:
    from gdgan.store import IntegrityError

    m = make_dataset().save(local_store)
    path = local_store.fetch(m.id, "images.npy")
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        load_dataset(local_store, m.id)
