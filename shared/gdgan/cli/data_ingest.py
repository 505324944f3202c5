"""``gdgan data ingest-chexpert|ingest-mimic|ingest-padchest|ingest-vindr|ingest-csv|ingest-folder``.

One verb per publisher's layout (:mod:`gdgan.data.adapters`), registered on ``gdgan data``'s app;
same conventions as ``ingest-nih``: ``--size``, ``--json`` (one JSON object on stdout), a progress
bar on stderr, bad input as one line on stderr with exit code 2.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from gdgan.cli.data import (
    AGE_BAND_HELP,
    JSON_HELP,
    KEY_MAP_HELP,
    STORE_HELP,
    _ingest_and_report,
    app,
    fail,
)

SIZE_OPT = typer.Option(64, "--size", help="Target side in pixels (32, 64, 128 or 256).")
WORKERS_OPT = typer.Option(
    None, "--workers", min=1, help="Decode threads (default GDGAN_INGEST_WORKERS or CPUs)."
)
LIMIT_OPT = typer.Option(None, "--limit", min=1, help="Only the first N usable images.")
RESUME_OPT = typer.Option(
    None, "--resume-dir", help="Work folder for resumable chunks (default <cache_dir>/ingest)."
)
STORE_OPT = typer.Option(None, "--store", help=STORE_HELP)
JSON_OPT = typer.Option(False, "--json", help=JSON_HELP)
AGE_BAND_OPT = typer.Option(False, "--age-band", help=AGE_BAND_HELP)
KEY_MAP_OPT = typer.Option(None, "--write-key-map", help=KEY_MAP_HELP)
UNCERTAINTY_OPT = typer.Option(
    "ones",
    "--uncertainty",
    help="Uncertain (-1) labels: ones (U-Ones), zeros (U-Zeros) or ignore (leave the image out).",
)
LATERALS_OPT = typer.Option(
    False, "--keep-laterals", help="Keep lateral views (the schema then has no view label)."
)
FINDINGS_OPT = typer.Option(
    None, "--findings", help="Comma-separated subset of findings to keep (default: all the source has)."
)


def _split_names(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


# the flags every adapter verb ends with, in this order (name, annotation, typer default)
_COMMON_PARAMS = [
    inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=ann)
    for name, ann, default in (
        ("size", int, SIZE_OPT),
        ("workers", int | None, WORKERS_OPT),
        ("limit", int | None, LIMIT_OPT),
        ("resume_dir", Path | None, RESUME_OPT),
        ("store", str | None, STORE_OPT),
        ("as_json", bool, JSON_OPT),
        ("age_band", bool, AGE_BAND_OPT),
        ("key_map", Path | None, KEY_MAP_OPT),
    )
]


def _ingest_verb(
    name: str, source: str
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Register ``gdgan data <name>`` from a function that maps the verb's own flags to the adapter's
    options; the shared flags (``_COMMON_PARAMS``) and the run-and-report tail are added here, so
    each verb states only what differs between publishers.
    """

    def register(build_opts: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        own = inspect.signature(build_opts, eval_str=True)

        def command(**kwargs: Any) -> None:
            size, workers, limit, resume_dir, store, as_json, age_band, key_map = (
                kwargs.pop(p.name) for p in _COMMON_PARAMS
            )
            options = build_opts(**kwargs)

            def run(progress: Callable[[Any], None]) -> tuple[Any, Any]:
                from gdgan.data.adapters import ingest_source

                return ingest_source(source, size, options, workers=workers, limit=limit,
                                     resume_dir=resume_dir, progress=progress,
                                     age_band=age_band)  # fmt: skip

            _ingest_and_report(
                source, source, f"{source} {size}px", run, size, store, as_json, with_labels=True,
                key_map=key_map,
            )  # fmt: skip

        command.__signature__ = own.replace(  # type: ignore[attr-defined]
            parameters=[*own.parameters.values(), *_COMMON_PARAMS], return_annotation=None
        )
        command.__name__, command.__doc__ = build_opts.__name__, build_opts.__doc__
        app.command(name)(command)
        return build_opts

    return register


@_ingest_verb("ingest-chexpert", "chexpert")
def ingest_chexpert_cmd(
    csv_path: Path = typer.Option(..., "--csv", help="train.csv / valid.csv, or the folder holding both."),
    images: Path = typer.Option(..., "--images", help="Folder the CSV's Path column is relative to."),
    uncertainty: str = UNCERTAINTY_OPT,
    keep_laterals: bool = LATERALS_OPT,
    findings: str | None = FINDINGS_OPT,
) -> dict[str, Any]:
    """Ingest CheXpert (valid.csv becomes the test part).

    Example: gdgan data ingest-chexpert --csv CheXpert-v1.0-small --images . --uncertainty zeros
    """
    opts = {"csv": str(csv_path), "images": str(images), "uncertainty": uncertainty,
            "laterals": "keep" if keep_laterals else "skip", "findings": _split_names(findings)}  # fmt: skip
    return opts


@_ingest_verb("ingest-mimic", "mimic")
def ingest_mimic_cmd(
    metadata: Path = typer.Option(..., "--metadata", help="mimic-cxr-2.0.0-metadata.csv(.gz)."),
    labels: Path = typer.Option(..., "--labels", help="mimic-cxr-2.0.0-chexpert.csv(.gz)."),
    images: Path = typer.Option(..., "--images", help="Folder holding files/p10/p10000032/..."),
    patients: Path | None = typer.Option(None, "--patients", help="MIMIC-IV patients.csv(.gz) (gives sex)."),
    split: Path | None = typer.Option(
        None, "--split", help="mimic-cxr-2.0.0-split.csv(.gz) (keeps the test part)."
    ),
    uncertainty: str = UNCERTAINTY_OPT,
    keep_laterals: bool = LATERALS_OPT,
    findings: str | None = FINDINGS_OPT,
) -> dict[str, Any]:
    """Ingest MIMIC-CXR-JPG (metadata + CheXpert labels [+ patients, split] joined on ids).

    Example: gdgan data ingest-mimic --metadata mimic-cxr-2.0.0-metadata.csv.gz
    --labels mimic-cxr-2.0.0-chexpert.csv.gz --images .
    """
    opts = {"metadata": str(metadata), "labels": str(labels), "images": str(images),
            "patients": str(patients) if patients else None, "split": str(split) if split else None,
            "uncertainty": uncertainty, "laterals": "keep" if keep_laterals else "skip",
            "findings": _split_names(findings)}  # fmt: skip
    return opts


@_ingest_verb("ingest-padchest", "padchest")
def ingest_padchest_cmd(
    csv_path: Path = typer.Option(
        ..., "--csv", help="PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv(.gz)."
    ),
    images: Path = typer.Option(
        ..., "--images", help="Folder with the ImageDir subfolders (or the PNGs flat)."
    ),
    keep_laterals: bool = LATERALS_OPT,
    findings: str | None = FINDINGS_OPT,
    min_count: int = typer.Option(1, "--min-count", min=1, help="Drop findings with fewer positive images."),
) -> dict[str, Any]:
    """Ingest PadChest (labels from its Labels column; 16-bit PNGs).

    Example: gdgan data ingest-padchest --csv PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv
    --images . --min-count 100
    """
    opts = {"csv": str(csv_path), "images": str(images), "laterals": "keep" if keep_laterals else "skip",
            "findings": _split_names(findings), "min_count": min_count}  # fmt: skip
    return opts


@_ingest_verb("ingest-vindr", "vindr")
def ingest_vindr_cmd(
    labels: Path = typer.Option(
        ..., "--labels", help="annotations/image_labels_train.csv (one row per reader)."
    ),
    images: Path = typer.Option(
        ..., "--images", help="Folder holding train/ and test/ with <image_id>.dicom."
    ),
    test_labels: Path | None = typer.Option(None, "--test-labels", help="annotations/image_labels_test.csv."),
    merge: str = typer.Option("majority", "--merge", help="Merge readers: majority (> half) or any (>= 1)."),
    general: str = typer.Option(
        "auto", "--general", help="auto, none, or a comma list of gender,view,age_band."
    ),
) -> dict[str, Any]:
    """Ingest VinDr-CXR (DICOM; per-radiologist labels merged by --merge).

    Example: gdgan data ingest-vindr --labels annotations/image_labels_train.csv --images . --merge majority
    """
    opts = {"labels": str(labels), "images": str(images), "merge": merge, "general": _general_opt(general),
            "test_labels": str(test_labels) if test_labels else None}  # fmt: skip
    return opts


def _general_opt(text: str) -> str | list[str]:
    from gdgan.labels import LabelError, general_choice

    try:
        g = general_choice(text)
    except LabelError as exc:
        fail(f"--general: {exc}")
    return g if isinstance(g, str) else list(g)


@_ingest_verb("ingest-csv", "csv")
def ingest_csv_cmd(
    csv_path: Path = typer.Option(..., "--csv", help="Any CSV with one row per image."),
    images: Path = typer.Option(..., "--images", help="Folder the path column is relative to."),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="YAML/JSON label mapping (see docs/notes/data.md)."
    ),
    path_column: str | None = typer.Option(None, "--path-column", help="Column with the image path."),
    findings_column: str | None = typer.Option(None, "--findings-column", help="Label-list column ('A|B')."),
    separator: str = typer.Option("|", "--separator", help="Separator of the label-list column."),
    finding_columns: str | None = typer.Option(
        None, "--finding-columns", help="0/1 columns, NAME=COLUMN or COLUMN, comma-separated."
    ),
    sex_column: str | None = typer.Option(None, "--sex-column", help="Column with M/F (or Male/Female)."),
    view_column: str | None = typer.Option(None, "--view-column", help="Column with PA/AP."),
    patient_column: str | None = typer.Option(
        None, "--patient-column", help="Column with a patient key (hashed)."
    ),
    age_column: str | None = typer.Option(None, "--age-column", help="Column with the age in years."),
    split_column: str | None = typer.Option(None, "--split-column", help="Column with train/test."),
    general: str = typer.Option(
        "auto", "--general", help="auto, none, or a comma list of gender,view,age_band."
    ),
) -> dict[str, Any]:
    """Ingest any CSV: a path column plus label columns named by flags or a --mapping file.

    Example: gdgan data ingest-csv --csv labels.csv --images imgs --path-column file --findings-column labels
    """
    if mapping is not None:
        if path_column or findings_column or finding_columns:
            fail("give either --mapping or the column flags, not both")
        opts: dict[str, Any] = {"csv": str(csv_path), "images": str(images), "mapping_file": str(mapping)}
    else:
        if not path_column:
            fail("--path-column is required without --mapping")
        if bool(findings_column) == bool(finding_columns):
            fail("give exactly one of --findings-column or --finding-columns (or a --mapping file)")
        m: dict[str, Any] = {"path": path_column}
        if findings_column:
            m["findings"] = {"list": {"column": findings_column, "separator": separator}}
        else:
            cols = {}
            for item in _split_names(finding_columns) or []:
                name, _, col = item.partition("=")
                cols[name.strip()] = (col or name).strip()
            m["findings"] = {"columns": cols}
        for key, col in (("sex", sex_column), ("view", view_column), ("patient", patient_column),
                         ("age", age_column), ("split", split_column)):  # fmt: skip
            if col:
                m[key] = col
        opts = {"csv": str(csv_path), "images": str(images), "mapping": m}
    opts["general"] = _general_opt(general)
    return opts


@_ingest_verb("ingest-folder", "folder")
def ingest_folder_cmd(
    root: Path = typer.Option(
        ..., "--root", help="Tree of class folders (optionally under train/ and test/)."
    ),
    finding: str | None = typer.Option(
        None, "--finding", help="Class folders are true/false (1/0) for this finding."
    ),
    general: str = typer.Option(
        "auto", "--general", help="auto (from DICOM headers), none, or a comma list of gender,view,age_band."
    ),
) -> dict[str, Any]:
    """Ingest an ImageFolder-style tree: class subfolders are the labels (PNG, JPEG or DICOM).

    Example: gdgan data ingest-folder --root ./xrays --size 64
    (with --finding Cardiomegaly when the class folders are true/false)
    """
    opts = {"root": str(root), "finding": finding, "general": _general_opt(general)}
    return opts
