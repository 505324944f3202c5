"""``gdgan data ingest-chexpert|ingest-mimic|ingest-padchest|ingest-vindr|ingest-csv|ingest-folder``.

One verb per publisher's layout (:mod:`gdgan.data.adapters`), registered on ``gdgan data``'s app;
same conventions as ``ingest-nih``: ``--size``, ``--json`` (one JSON object on stdout), a progress
bar on stderr, bad input as one line on stderr with exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from gdgan.cli.data import (
    JSON_HELP,
    STORE_HELP,
    _bar,
    _counts_table,
    _emit_json,
    _open_store,
    _user_errors_exit,
    app,
    err,
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


def _ingest_adapter(
    source: str,
    options: dict[str, Any],
    size: int,
    workers: int | None,
    limit: int | None,
    resume_dir: Path | None,
    store: str | None,
    as_json: bool,
) -> None:
    """Run one adapter with a progress bar, save the dataset, print its report and label schema."""
    from gdgan.data.dataset import SUPPORTED_SIZES
    from gdgan.progress import Progress as Prog

    if size not in SUPPORTED_SIZES:
        fail(f"--size must be one of {', '.join(map(str, SUPPORTED_SIZES))}, got {size}")
    with _user_errors_exit():
        from gdgan.data.adapters import ingest_source

        st = _open_store(store)
        st.ping()
        with _bar(f"{source} {size}px") as update:

            def on_progress(p: Prog) -> None:
                update(p.step, p.total, p.images_per_s)  # type: ignore[call-arg]

            ds, report = ingest_source(
                source,
                size,
                options,
                workers=workers,
                limit=limit,
                resume_dir=resume_dir,
                progress=on_progress,
            )
        m = ds.save(st, config=ds.config, meta={"source": source, "ingest": report.to_dict()})
    labels = ds.schema.to_dict()
    if as_json:
        _emit_json({"id": m.id, "kind": m.kind, "source": source, "n": len(ds), "size": size, "store": st.url,
                    "labels": labels, "report": report.to_dict(), "counts": m.meta["counts"]})  # fmt: skip
        return
    err.print(report.summary(), highlight=False)
    err.print(
        f"labels: general {labels['general'] or 'none'}; {len(labels['findings'])} findings", highlight=False
    )
    err.print(_counts_table(f"{source} dataset {m.id}", {"all": m.meta["counts"]}))
    typer.echo(m.id)


@app.command("ingest-chexpert")
def ingest_chexpert_cmd(
    csv_path: Path = typer.Option(..., "--csv", help="train.csv / valid.csv, or the folder holding both."),
    images: Path = typer.Option(..., "--images", help="Folder the CSV's Path column is relative to."),
    uncertainty: str = UNCERTAINTY_OPT,
    keep_laterals: bool = LATERALS_OPT,
    findings: str | None = FINDINGS_OPT,
    size: int = SIZE_OPT,
    workers: int | None = WORKERS_OPT,
    limit: int | None = LIMIT_OPT,
    resume_dir: Path | None = RESUME_OPT,
    store: str | None = STORE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Ingest CheXpert (valid.csv becomes the test part).

    Example: gdgan data ingest-chexpert --csv CheXpert-v1.0-small --images . --uncertainty zeros
    """
    opts = {"csv": str(csv_path), "images": str(images), "uncertainty": uncertainty,
            "laterals": "keep" if keep_laterals else "skip", "findings": _split_names(findings)}  # fmt: skip
    _ingest_adapter("chexpert", opts, size, workers, limit, resume_dir, store, as_json)


@app.command("ingest-mimic")
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
    size: int = SIZE_OPT,
    workers: int | None = WORKERS_OPT,
    limit: int | None = LIMIT_OPT,
    resume_dir: Path | None = RESUME_OPT,
    store: str | None = STORE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Ingest MIMIC-CXR-JPG (metadata + CheXpert labels [+ patients, split] joined on ids).

    Example: gdgan data ingest-mimic --metadata mimic-cxr-2.0.0-metadata.csv.gz
    --labels mimic-cxr-2.0.0-chexpert.csv.gz --images .
    """
    opts = {"metadata": str(metadata), "labels": str(labels), "images": str(images),
            "patients": str(patients) if patients else None, "split": str(split) if split else None,
            "uncertainty": uncertainty, "laterals": "keep" if keep_laterals else "skip",
            "findings": _split_names(findings)}  # fmt: skip
    _ingest_adapter("mimic", opts, size, workers, limit, resume_dir, store, as_json)


@app.command("ingest-padchest")
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
    size: int = SIZE_OPT,
    workers: int | None = WORKERS_OPT,
    limit: int | None = LIMIT_OPT,
    resume_dir: Path | None = RESUME_OPT,
    store: str | None = STORE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Ingest PadChest (labels from its Labels column; 16-bit PNGs).

    Example: gdgan data ingest-padchest --csv PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv
    --images . --min-count 100
    """
    opts = {"csv": str(csv_path), "images": str(images), "laterals": "keep" if keep_laterals else "skip",
            "findings": _split_names(findings), "min_count": min_count}  # fmt: skip
    _ingest_adapter("padchest", opts, size, workers, limit, resume_dir, store, as_json)


@app.command("ingest-vindr")
def ingest_vindr_cmd(
    labels: Path = typer.Option(
        ..., "--labels", help="annotations/image_labels_train.csv (one row per reader)."
    ),
    images: Path = typer.Option(
        ..., "--images", help="Folder holding train/ and test/ with <image_id>.dicom."
    ),
    test_labels: Path | None = typer.Option(None, "--test-labels", help="annotations/image_labels_test.csv."),
    merge: str = typer.Option("majority", "--merge", help="Merge readers: majority (> half) or any (>= 1)."),
    general: str = typer.Option("auto", "--general", help="auto, none, or a comma list of gender,view."),
    size: int = SIZE_OPT,
    workers: int | None = WORKERS_OPT,
    limit: int | None = LIMIT_OPT,
    resume_dir: Path | None = RESUME_OPT,
    store: str | None = STORE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Ingest VinDr-CXR (DICOM; per-radiologist labels merged by --merge).

    Example: gdgan data ingest-vindr --labels annotations/image_labels_train.csv --images . --merge majority
    """
    opts = {"labels": str(labels), "images": str(images), "merge": merge, "general": _general_opt(general),
            "test_labels": str(test_labels) if test_labels else None}  # fmt: skip
    _ingest_adapter("vindr", opts, size, workers, limit, resume_dir, store, as_json)


def _general_opt(text: str) -> str | list[str]:
    t = text.strip().lower()
    if t == "auto":
        return "auto"
    names = [] if t == "none" else _split_names(t) or []
    bad = [n for n in names if n not in ("gender", "view")]
    if bad:
        fail(f"--general: {bad[0]!r} is not a general label (auto, none, gender, view)")
    return names


@app.command("ingest-csv")
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
    general: str = typer.Option("auto", "--general", help="auto, none, or a comma list of gender,view."),
    size: int = SIZE_OPT,
    workers: int | None = WORKERS_OPT,
    limit: int | None = LIMIT_OPT,
    resume_dir: Path | None = RESUME_OPT,
    store: str | None = STORE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
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
    _ingest_adapter("csv", opts, size, workers, limit, resume_dir, store, as_json)


@app.command("ingest-folder")
def ingest_folder_cmd(
    root: Path = typer.Option(
        ..., "--root", help="Tree of class folders (optionally under train/ and test/)."
    ),
    finding: str | None = typer.Option(
        None, "--finding", help="Class folders are true/false (1/0) for this finding."
    ),
    general: str = typer.Option("auto", "--general", help="auto (from DICOM headers), none, or gender,view."),
    size: int = SIZE_OPT,
    workers: int | None = WORKERS_OPT,
    limit: int | None = LIMIT_OPT,
    resume_dir: Path | None = RESUME_OPT,
    store: str | None = STORE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Ingest an ImageFolder-style tree: class subfolders are the labels (PNG, JPEG or DICOM).

    Example: gdgan data ingest-folder --root ./xrays --size 64
    (with --finding Cardiomegaly when the class folders are true/false)
    """
    opts = {"root": str(root), "finding": finding, "general": _general_opt(general)}
    _ingest_adapter("folder", opts, size, workers, limit, resume_dir, store, as_json)
