"""The dataset artifact: a uint8 image array plus a column-oriented label table.

Images are one ``(N, H, W)`` uint8 ``.npy`` file so that a 112k-image 64-px set memory-maps in
milliseconds and moves to a GPU as one tensor; nothing is decoded per training step (the
authors' code decodes 1024² PNGs on every step). Labels are a ``.npz`` of plain arrays, loaded
with ``allow_pickle=False``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdgan.labels import FINDINGS, N_FINDINGS, general_matrix
from gdgan.store import ArtifactStore, Manifest, StoreError

DATASET_KIND = "dataset"
IMAGES_FILE = "images.npy"
LABELS_FILE = "labels.npz"
SUPPORTED_SIZES = (32, 64, 128, 256)

# Required label columns and their dtypes. Ground-truth columns (phantom) start with "gt_".
REQUIRED_COLUMNS: dict[str, str] = {
    "image_index": "U",  # file name in NIH's CSV, e.g. 00000001_000.png
    "patient_id": "i",
    "follow_up": "i",
    "age": "i",  # -1 where unknown
    "gender": "u",  # 0 = M, 1 = F
    "view": "u",  # 0 = PA, 1 = AP
    "findings": "u",  # (N, 14) multi-hot, order of gdgan.labels.FINDINGS
}
# 0 = not given, 1 = NIH train_val_list.txt, 2 = NIH test_list.txt
OFFICIAL_SPLIT_COLUMN = "official_split"


class DatasetError(StoreError):
    pass


@dataclass
class ImageDataset:
    """Images ``(N, H, W)`` uint8 and their label columns (each of length N)."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise DatasetError(f"images must be (N, H, W) uint8, got {self.images.shape} {self.images.dtype}")
        n = self.images.shape[0]
        for col, kind in REQUIRED_COLUMNS.items():
            if col not in self.labels:
                raise DatasetError(f"label table lacks column {col!r}")
            arr = self.labels[col]
            if arr.shape[0] != n:
                raise DatasetError(f"label column {col!r} has {arr.shape[0]} rows, images have {n}")
            if arr.dtype.kind != kind and not (kind in "iu" and arr.dtype.kind in "iu"):
                raise DatasetError(f"label column {col!r} has dtype {arr.dtype}, expected kind {kind!r}")
        if self.labels["findings"].shape[1:] != (N_FINDINGS,):
            raise DatasetError(f"findings must be (N, {N_FINDINGS})")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def general(self) -> np.ndarray:
        """(N, 2) float32 [is_female, is_AP]."""
        return general_matrix(self.labels["gender"], self.labels["view"])

    def detail(self) -> np.ndarray:
        """(N, 14) float32 multi-hot findings."""
        return self.labels["findings"].astype(np.float32)

    def subset(self, idx: np.ndarray) -> ImageDataset:
        idx = np.asarray(idx)
        return ImageDataset(
            images=np.asarray(self.images[idx]),
            labels={k: v[idx] for k, v in self.labels.items()},
            id=self.id,
            config=dict(self.config),
        )

    def counts(self, idx: np.ndarray | None = None) -> dict[str, Any]:
        """Counts per gender, view, (gender, view) and finding — the ``data show`` table."""
        return label_counts(self.labels, idx)

    # -- store --------------------------------------------------------------------------------
    def save(
        self,
        store: ArtifactStore,
        config: dict[str, Any] | None = None,
        parents: list[str] | None = None,
        meta: dict[str, Any] | None = None,
        artifact_id: str | None = None,
    ) -> Manifest:
        """Write images and labels, then the manifest (with counts) last."""
        config = dict(config or self.config)
        config.setdefault("size", self.size)
        with (
            tempfile.TemporaryDirectory(prefix="gdgan-ds-") as tmp,
            store.writer(DATASET_KIND, artifact_id) as w,
        ):
            img_path = Path(tmp) / IMAGES_FILE
            np.save(img_path, np.ascontiguousarray(self.images))
            w.put_file(IMAGES_FILE, img_path)
            lab_path = Path(tmp) / LABELS_FILE
            np.savez(lab_path, **self.labels)
            w.put_file(LABELS_FILE, lab_path)
            m = w.commit(
                config=config,
                parents=parents,
                meta={"counts": self.counts(), "n": len(self), "size": self.size, **(meta or {})},
            )
        self.id = m.id
        self.config = config
        return m


def label_counts(labels: dict[str, np.ndarray], idx: np.ndarray | None = None) -> dict[str, Any]:
    """Images, patients, and counts per gender, view, (gender, view) and finding of rows ``idx``."""
    sel = slice(None) if idx is None else np.asarray(idx)
    g = labels["gender"][sel]
    v = labels["view"][sel]
    f = labels["findings"][sel]
    return {
        "images": len(g),
        "patients": len(np.unique(labels["patient_id"][sel])),
        "gender": {"M": int((g == 0).sum()), "F": int((g == 1).sum())},
        "view": {"PA": int((v == 0).sum()), "AP": int((v == 1).sum())},
        "group": {
            f"{gn}/{vn}": int(((g == gi) & (v == vi)).sum())
            for gi, gn in enumerate(("M", "F"))
            for vi, vn in enumerate(("PA", "AP"))
        },
        "findings": {name: int(f[:, i].sum()) for i, name in enumerate(FINDINGS)},
        "no_finding": int((f.sum(axis=1) == 0).sum()),
    }


def load_labels(store: ArtifactStore, dataset_id: str) -> dict[str, np.ndarray]:
    """The label table alone (no images): what counts and splits need."""
    with np.load(store.fetch(dataset_id, LABELS_FILE), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def split_counts(labels: dict[str, np.ndarray], seed: int = 0) -> dict[str, dict[str, Any]]:
    """:func:`label_counts` per part of the patient-wise split with ``seed`` (train/val/test)."""
    from gdgan.data.splits import patient_split

    split = patient_split(labels["patient_id"], seed=seed, official_split=labels.get(OFFICIAL_SPLIT_COLUMN))
    return {part: label_counts(labels, split.part(part)) for part in ("train", "val", "test")}


def load_dataset(store: ArtifactStore, dataset_id: str, mmap: bool = True) -> ImageDataset:
    """Load a dataset artifact; images are memory-mapped when ``mmap`` (no copy until touched)."""
    m = store.manifest(dataset_id)
    if m.kind != DATASET_KIND:
        raise DatasetError(f"artifact {dataset_id!r} is a {m.kind!r}, not a dataset")
    images = np.load(
        store.fetch(dataset_id, IMAGES_FILE), mmap_mode="r" if mmap else None, allow_pickle=False
    )
    return ImageDataset(images=images, labels=load_labels(store, dataset_id), id=dataset_id, config=m.config)
