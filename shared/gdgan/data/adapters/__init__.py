"""Bring your own radiographs: one adapter per publisher's layout, all sharing one back half.

Each ``read_*`` reads a source as its publisher ships it into a :class:`~.common.Source`
(records with labels in the source's own schema); :func:`ingest_source` decodes it through the
machinery NIH's adapter uses (:func:`gdgan.data.decode.decode_images`) into an ImageDataset that
carries its label schema. ``SOURCES`` names the options each source takes and which of them are
paths (the REST API checks those lie inside the import folder).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gdgan.data.adapters.chexpert import read_chexpert
from gdgan.data.adapters.common import AdapterError, Source, build_dataset
from gdgan.data.adapters.folder import read_folder
from gdgan.data.adapters.generic import load_mapping, read_generic_csv
from gdgan.data.adapters.mimic import read_mimic
from gdgan.data.adapters.padchest import read_padchest
from gdgan.data.adapters.vindr import read_vindr
from gdgan.data.nih import IngestCancelled, IngestReport
from gdgan.progress import ProgressCallback, StopFlag

if TYPE_CHECKING:
    from pathlib import Path

    from gdgan.data.dataset import ImageDataset
    from gdgan.store import ArtifactStore, Manifest


def _csv(
    csv: str,
    images: str,
    mapping: dict[str, Any] | None = None,
    mapping_file: str | None = None,
    general: tuple[str, ...] | str = "auto",
) -> Source:
    if (mapping is None) == (mapping_file is None):
        raise AdapterError("give exactly one of a label mapping (flags / 'mapping') or a mapping file")
    m = mapping if mapping is not None else load_mapping(str(mapping_file))
    return read_generic_csv(csv, images, m, general=general)


def _opt_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


READERS: dict[str, Callable[..., Source]] = {
    "chexpert": read_chexpert,
    "mimic": read_mimic,
    "padchest": read_padchest,
    "vindr": read_vindr,
    "csv": _csv,
    "folder": read_folder,
}
# options that name files or folders (checked against the import folder by the REST API)
PATH_OPTIONS: dict[str, tuple[str, ...]] = {
    "chexpert": ("csv", "images"),
    "mimic": ("metadata", "labels", "images", "patients", "split"),
    "padchest": ("csv", "images"),
    "vindr": ("labels", "images", "test_labels"),
    "csv": ("csv", "images", "mapping_file"),
    "folder": ("root",),
}
SOURCES: tuple[str, ...] = tuple(READERS)


def read_source(source: str, options: dict[str, Any]) -> Source:
    if source not in READERS:
        raise AdapterError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    opts = {k: _opt_tuple(v) for k, v in options.items() if v is not None}
    try:
        return READERS[source](**opts)
    except TypeError as exc:  # an option this source does not take
        raise AdapterError(f"{source}: {exc}") from None


def ingest_source(
    source: str,
    size: int,
    options: dict[str, Any],
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopFlag | None = None,
    **kwargs: Any,
) -> tuple[ImageDataset, IngestReport]:
    """Read ``source`` with ``options`` and decode it at ``size``; kwargs go to :func:`build_dataset`
    (workers, resume_dir, limit, keep_work, chunk_size, salt)."""
    src = read_source(source, options)
    ds = build_dataset(src, size, progress=progress, should_stop=should_stop, **kwargs)
    return ds, src.report


def ingest_source_to_store(
    source: str,
    size: int,
    options: dict[str, Any],
    store: ArtifactStore,
    *,
    artifact_id: str | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopFlag | None = None,
    key_map: str | Path | None = None,
    **kwargs: Any,
) -> Manifest | None:
    """:func:`ingest_source`, then save the artifact (report in ``meta.ingest``, redacted); None if
    cancelled. ``key_map``: a local CSV to receive the hashed image keys and their source paths."""
    try:
        ds, report = ingest_source(
            source, size, options, progress=progress, should_stop=should_stop, **kwargs
        )
    except IngestCancelled:
        return None
    meta = {"source": source, "ingest": report.to_dict(redact=True)}
    return ds.save(
        store, config=ds.config, meta=meta, artifact_id=artifact_id, salt=kwargs.get("salt"), key_map=key_map
    )


__all__ = [
    "PATH_OPTIONS",
    "SOURCES",
    "AdapterError",
    "Source",
    "ingest_source",
    "ingest_source_to_store",
    "read_source",
]
