"""Lineage check: a GAN used for a split must come from that split's training part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gdgan.evaluation.lineage import check_lineage
from gdgan.store import open_store
from gdgan.training.data import index_digest


def _model(store, kind: str, dataset_id: str, seed: int, idx: np.ndarray, meta: dict | None = None) -> str:
    with store.writer(kind) as w:
        w.put_bytes("x.bin", b"0")
        return w.commit(
            meta={
                "dataset_id": dataset_id,
                "split_seed": seed,
                "train_digest": index_digest(idx),
                **(meta or {}),
            }
        ).id


def test_lineage_ok_and_mismatches(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    train = np.arange(0, 70)
    good = _model(store, "acgan", "dataset-a", 1, train)
    r = check_lineage(store, good, "dataset-a", 1, train)
    assert r["ok"] and not r["problems"]
    assert not check_lineage(store, good, "dataset-a", 2, train)["ok"]
    assert not check_lineage(store, good, "dataset-b", 1, train)["ok"]
    leaked = np.arange(0, 80)  # trained on images outside this split's training part
    bad = check_lineage(store, good, "dataset-a", 1, leaked)
    assert not bad["ok"] and "training indices differ" in bad["problems"][0]


def test_gdgan_bundle_checks_both_stages(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    train = np.arange(10, 50)
    s1 = _model(store, "gdgan-stage1", "dataset-a", 0, train)
    s2 = _model(store, "gdgan-stage2", "dataset-a", 0, np.arange(10, 60))  # stage 2 saw more images
    with store.writer("gdgan") as w:
        bundle = w.commit(meta={"stage1": s1, "stage2": s2, "dataset_id": "dataset-a", "split_seed": 0}).id
    r = check_lineage(store, bundle, "dataset-a", 0, train)
    assert not r["ok"] and len(r["stages"]) == 2 and s2 in r["problems"][0]
