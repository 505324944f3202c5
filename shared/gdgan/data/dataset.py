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

from gdgan.labels import AGE_BAND, NIH_SCHEMA, SCHEMA_KEY, LabelSchema, schema_of
from gdgan.store import ArtifactStore, Manifest, StoreError

DATASET_KIND = "dataset"
IMAGES_FILE = "images.npy"
LABELS_FILE = "labels.npz"
SUPPORTED_SIZES = (32, 64, 128, 256)

# Required label columns and their dtypes. Ground-truth columns (phantom) start with "gt_".
REQUIRED_COLUMNS: dict[str, str] = {
    # the source's file key (NIH 00000001_000.png) in memory; stored as a salted hash,
    # k-<24 hex>.png (gdgan.data.pseudonym), since source file names embed patient ids
    "image_index": "U",
    "patient_id": "i",
    "follow_up": "i",
    "age": "i",  # -1 where unknown
    "gender": "u",  # 0 = M, 1 = F (0 throughout when the schema has no gender)
    "view": "u",  # 0 = PA, 1 = AP (0 throughout when the schema has no view)
    "findings": "u",  # (N, F) multi-hot, in the order of the dataset's schema findings
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
    schema: LabelSchema = NIH_SCHEMA

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
        nf = self.schema.n_findings
        if self.labels["findings"].ndim != 2 or self.labels["findings"].shape[1:] != (nf,):
            raise DatasetError(f"findings must be (N, {nf}) for the schema's {nf} findings")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def general(self) -> np.ndarray:
        """(N, G) float32: the schema's general columns (NIH: [is_female, is_AP]; none: (N, 0);
        an age band: its cumulative columns from the ``age`` column and the schema's edges)."""
        return self.schema.columns(self.schema.codes_of(self.labels))

    def detail(self) -> np.ndarray:
        """(N, F) float32 multi-hot findings (the schema's order)."""
        return self.labels["findings"].astype(np.float32)

    def subset(self, idx: np.ndarray) -> ImageDataset:
        idx = np.asarray(idx)
        return ImageDataset(
            images=np.asarray(self.images[idx]),
            labels={k: v[idx] for k, v in self.labels.items()},
            id=self.id,
            config=dict(self.config),
            schema=self.schema,
        )

    def counts(self, idx: np.ndarray | None = None) -> dict[str, Any]:
        """Counts per gender, view, (gender, view) and finding — the ``data show`` table."""
        return counts_of(self.labels, self.schema, idx)

    # -- store --------------------------------------------------------------------------------
    def save(
        self,
        store: ArtifactStore,
        config: dict[str, Any] | None = None,
        parents: list[str] | None = None,
        meta: dict[str, Any] | None = None,
        artifact_id: str | None = None,
        *,
        salt: str | None = None,
        key_map: str | Path | None = None,
    ) -> Manifest:
        """Write images and labels, then the manifest (with counts) last.

        ``image_index`` is stored as a salted hash (``salt``, default GDGAN_PATIENT_ID_SALT), since
        source file names embed patient ids; this dataset in memory keeps its source keys.
        ``key_map`` names a local CSV (outside the store) to receive the hash -> source key rows.
        """
        from gdgan.data.pseudonym import pseudonymise_keys, write_key_map

        config = dict(config or self.config)
        config.setdefault("size", self.size)
        labels, mapping, how = pseudonymise_keys(self.labels, salt)
        with (
            tempfile.TemporaryDirectory(prefix="gdgan-ds-") as tmp,
            store.writer(DATASET_KIND, artifact_id) as w,
        ):
            img_path = Path(tmp) / IMAGES_FILE
            np.save(img_path, np.ascontiguousarray(self.images))
            w.put_file(IMAGES_FILE, img_path)
            lab_path = Path(tmp) / LABELS_FILE
            np.savez(lab_path, **labels)
            w.put_file(LABELS_FILE, lab_path)
            m = w.commit(
                config=config,
                parents=parents,
                meta={
                    "counts": self.counts(),
                    "n": len(self),
                    "size": self.size,
                    SCHEMA_KEY: self.schema.to_dict(),
                    "image_index": how,
                    **(meta or {}),
                },
            )
        self.id = m.id
        self.config = config
        if key_map is not None:
            write_key_map(key_map, mapping, m.id)
        return m


def counts_of(
    labels: dict[str, np.ndarray], schema: LabelSchema = NIH_SCHEMA, idx: np.ndarray | None = None
) -> dict[str, Any]:
    """:func:`label_counts` of the rows ``idx`` (all rows when None) of a label table."""
    sel = slice(None) if idx is None else np.asarray(idx)
    return label_counts(
        schema,
        labels["patient_id"][sel],
        labels["gender"][sel],
        labels["view"][sel],
        labels["findings"][sel],
        age=labels["age"][sel],
    )


def load_labels(store: ArtifactStore, dataset_id: str) -> dict[str, np.ndarray]:
    """The label table alone (no images): what counts and splits need."""
    with np.load(store.fetch(dataset_id, LABELS_FILE), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def split_counts(
    labels: dict[str, np.ndarray], schema: LabelSchema = NIH_SCHEMA, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """:func:`counts_of` per part of the patient-wise split with ``seed`` (train/val/test): what
    the gateway's dataset page and ``gdgan data show`` print."""
    from gdgan.data.splits import patient_split

    split = patient_split(labels["patient_id"], seed=seed, official_split=labels.get(OFFICIAL_SPLIT_COLUMN))
    return {part: counts_of(labels, schema, split.part(part)) for part in ("train", "val", "test")}


def load_dataset(store: ArtifactStore, dataset_id: str, mmap: bool = True) -> ImageDataset:
    """Load a dataset artifact; images are memory-mapped when ``mmap`` (no copy until touched)."""
    m = store.manifest(dataset_id)
    if m.kind != DATASET_KIND:
        raise DatasetError(f"artifact {dataset_id!r} is a {m.kind!r}, not a dataset")
    images = np.load(
        store.fetch(dataset_id, IMAGES_FILE), mmap_mode="r" if mmap else None, allow_pickle=False
    )
    return ImageDataset(
        images=images,
        labels=load_labels(store, dataset_id),
        id=dataset_id,
        config=m.config,
        schema=schema_of(m.meta),
    )


def label_counts(
    schema: LabelSchema,
    patient_id: np.ndarray,
    gender: np.ndarray,
    view: np.ndarray,
    findings: np.ndarray,
    age: np.ndarray | None = None,
) -> dict[str, Any]:
    """Counts per general label, group and finding; a general label the schema lacks is ``{}``."""
    has_g, has_v = schema.has("gender"), schema.has("view")
    ages = np.full(len(gender), -1) if age is None else np.asarray(age)
    codes = schema.codes_of({"gender": gender, "view": view, "age": ages})
    groups: dict[str, int] = {}
    if schema.general:
        for key in schema.groups():
            groups[schema.group_key(key)] = int(np.all(codes == np.asarray(key), axis=1).sum())
    bands: dict[str, int] = {}
    if schema.has(AGE_BAND):
        band = codes[:, schema.general.index(AGE_BAND)]
        bands = {name: int((band == i).sum()) for i, name in enumerate(schema.values(AGE_BAND))}
    return {
        "images": len(gender),
        "patients": len(np.unique(patient_id)),
        "gender": {"M": int((gender == 0).sum()), "F": int((gender == 1).sum())} if has_g else {},
        "view": {"PA": int((view == 0).sum()), "AP": int((view == 1).sum())} if has_v else {},
        **({AGE_BAND: bands} if bands else {}),
        "group": groups,
        "findings": {name: int(findings[:, i].sum()) for i, name in enumerate(schema.findings)},
        "no_finding": int((findings.sum(axis=1) == 0).sum()),
    }
