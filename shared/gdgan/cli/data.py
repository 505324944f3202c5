"""``gdgan data``: build, ingest and inspect datasets.

Every verb that creates a dataset artifact accepts ``--json`` and then prints exactly one JSON
object on stdout (``{"id": ..., ...summary}``) so scripts can chain verbs; progress bars and
messages go to stderr. Bad input is a one-line error on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(
    help="Build, ingest and inspect datasets (phantom, NIH ChestX-ray14, CheXpert, MIMIC-CXR-JPG, "
    "PadChest, VinDr-CXR, any CSV or class folders).",
    no_args_is_help=True,
)
err = Console(stderr=True)

STORE_HELP = "Artifact store URL (file:///path or s3://bucket); default: GDGAN_STORE_URL."
JSON_HELP = "Print exactly one JSON object on stdout instead of tables."


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 2."""
    err.print(f"[red]error:[/red] {' '.join(str(message).split())}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _user_errors() -> tuple[type[BaseException], ...]:
    from pydantic import ValidationError

    from gdgan.data.dataset import DatasetError
    from gdgan.data.nih import NIHFormatError
    from gdgan.labels import LabelError
    from gdgan.settings import SettingsError
    from gdgan.store import StoreError

    return (NIHFormatError, LabelError, StoreError, DatasetError, SettingsError, ValidationError, ValueError)


@contextmanager
def _user_errors_exit() -> Iterator[None]:
    """Turn known user-facing errors into a one-line message and exit code 2 (no traceback)."""
    try:
        yield
    except typer.Exit:
        raise
    except _user_errors() as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted (an NIH ingest resumes where it stopped when rerun)")


@contextmanager
def _bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, drawn from the first update on (so an input error that
    comes before any work prints only its one line); yields update(done, total, rate=None)."""
    if not enabled:
        yield lambda _d, _t: None
        return
    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    bar = Progress(*cols, console=err, transient=False)
    task = bar.add_task(description, total=None, rate="")
    started = False

    def update(done: int, total: int, rate: float | None = None) -> None:
        nonlocal started
        if not started:
            bar.start()
            started = True
        bar.update(task, completed=done, total=total, rate=f"{rate:.0f} img/s" if rate else "")

    try:
        yield update  # type: ignore[misc]
    finally:
        if started:
            bar.stop()


def _open_store(url: str | None) -> Any:
    from gdgan.store import open_store

    return open_store(url)


def _emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def _counts_table(title: str, parts: dict[str, dict[str, Any]]) -> Table:
    """Rows: images, patients, gender, view, groups, findings; one column per part."""
    t = Table(title=title, title_justify="left")
    t.add_column("")
    for name in parts:
        t.add_column(name, justify="right")
    first = next(iter(parts.values()))

    def row(label: str, get: Callable[[dict[str, Any]], int], style: str | None = None) -> None:
        t.add_row(label, *[f"{get(c):,}" for c in parts.values()], style=style)

    row("images", lambda c: c["images"], "bold")
    row("patients", lambda c: c["patients"])
    for g in first["gender"]:
        row(f"gender {g}", lambda c, g=g: c["gender"][g])
    for v in first["view"]:
        row(f"view {v}", lambda c, v=v: c["view"][v])
    for grp in first["group"]:
        row(f"  {grp}", lambda c, grp=grp: c["group"][grp])
    row("No Finding", lambda c: c["no_finding"])
    for f in first["findings"]:
        row(f, lambda c, f=f: c["findings"][f], "bold magenta" if f == "Cardiomegaly" else None)
    return t


def _parse_prevalence(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            fail(f"--prevalence expects NAME=RATE (e.g. Effusion=0.2), got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            fail(f"--prevalence {name.strip()}: {value!r} is not a number")
    return out


# --------------------------------------------------------------------------------------------
@app.command("phantom")
def phantom(
    n: int = typer.Option(8000, "--n", help="Number of images.", min=1),
    size: int = typer.Option(64, "--size", help="Image side in pixels (32, 64, 128 or 256)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same images and labels.", min=0),
    cardiomegaly_rate: float | None = typer.Option(
        None, "--cardiomegaly-rate", help="Overall Cardiomegaly prevalence (default NIH's 2.48 %)."
    ),
    prevalence: list[str] = typer.Option(
        [], "--prevalence", help="Override a finding's prevalence, NAME=RATE (repeatable)."
    ),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Generate a phantom chest X-ray dataset (NIH label mix) and store it as a dataset artifact.

    Example: gdgan data phantom --n 8000 --size 64 --seed 0
    """
    from gdgan.data.dataset import SUPPORTED_SIZES

    if size not in SUPPORTED_SIZES:
        fail(f"--size must be one of {', '.join(map(str, SUPPORTED_SIZES))}, got {size}")
    prev = _parse_prevalence(prevalence)
    if cardiomegaly_rate is not None:
        prev["Cardiomegaly"] = cardiomegaly_rate
    with _user_errors_exit():
        from gdgan.data.phantom import PhantomConfig, make_phantom

        cfg = PhantomConfig(n=n, size=size, seed=seed, prevalence=prev)
        st = _open_store(store)
        st.ping()
        with _bar(f"phantom {size}px") as update:
            ds = make_phantom(cfg, progress=update)
        m = ds.save(st, config=ds.config, meta={"source": "phantom"})
    counts = m.meta["counts"]
    if as_json:
        _emit_json({"id": m.id, "kind": m.kind, "source": "phantom", "n": len(ds), "size": size,
                    "seed": seed, "store": st.url, "counts": counts})  # fmt: skip
        return
    err.print(_counts_table(f"phantom dataset {m.id}", {"all": counts}))
    typer.echo(m.id)


@app.command("ingest-nih")
def ingest_nih_cmd(
    csv_path: Path = typer.Option(
        ..., "--csv", help="Data_Entry_2017.csv / Data_Entry_2017_v2020.csv (or its folder)."
    ),
    images: Path = typer.Option(
        ..., "--images", help="Image root: flat PNGs, images/, or NIH's images_001/images/ ..."
    ),
    size: int = typer.Option(64, "--size", help="Target side in pixels (32, 64, 128 or 256)."),
    official_lists: Path | None = typer.Option(
        None, "--official-lists", help="Folder with NIH's train_val_list.txt and test_list.txt."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Decode threads (default GDGAN_INGEST_WORKERS or CPUs)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N usable rows."),
    resume_dir: Path | None = typer.Option(
        None, "--resume-dir", help="Work folder for resumable chunks (default <cache_dir>/ingest)."
    ),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Ingest NIH ChestX-ray14 (CSV + PNGs) into a dataset artifact of SIZE² uint8 images.

    Decodes in parallel with an anti-aliasing resize; bad rows and unreadable files are reported
    and skipped; an interrupted ingest resumes when rerun with the same arguments.

    Example: gdgan data ingest-nih --csv Data_Entry_2017_v2020.csv --images ./images --size 64
    """
    from gdgan.data.dataset import SUPPORTED_SIZES
    from gdgan.progress import Progress as Prog

    if size not in SUPPORTED_SIZES:
        fail(f"--size must be one of {', '.join(map(str, SUPPORTED_SIZES))}, got {size}")
    with _user_errors_exit():
        from gdgan.data.nih import ingest_nih

        st = _open_store(store)
        st.ping()
        with _bar(f"ingest {size}px") as update:

            def on_progress(p: Prog) -> None:
                update(p.step, p.total, p.images_per_s)  # type: ignore[call-arg]

            ds, report = ingest_nih(
                csv_path, images, size, workers=workers, official_lists_dir=official_lists,
                progress=on_progress, resume_dir=resume_dir, limit=limit,
            )  # fmt: skip
        m = ds.save(st, config=ds.config, meta={"source": "nih", "ingest": report.to_dict()})
    if as_json:
        _emit_json({"id": m.id, "kind": m.kind, "source": "nih", "n": len(ds), "size": size,
                    "store": st.url, "report": report.to_dict(), "counts": m.meta["counts"]})  # fmt: skip
        return
    err.print(report.summary(), highlight=False)
    err.print(_counts_table(f"NIH dataset {m.id}", {"all": m.meta["counts"]}))
    typer.echo(m.id)


def _resolve_dataset(st: Any, dataset: str) -> str:
    if dataset == "latest":
        m = st.latest("dataset")
        if m is None:
            fail(f"no datasets in {st.url}; create one with `gdgan data phantom`")
        return str(m.id)
    return dataset


@app.command("show")
def show(
    dataset: str = typer.Argument(..., help="Dataset id (see `gdgan data list`) or 'latest'."),
    split_seed: int = typer.Option(0, "--split-seed", min=0, help="Seed of the patient-wise split."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Counts per gender, view, finding and per part of the patient-wise 70/10/20 split."""
    with _user_errors_exit():
        from gdgan.data.dataset import OFFICIAL_SPLIT_COLUMN, load_dataset
        from gdgan.data.splits import patient_split

        st = _open_store(store)
        ds_id = _resolve_dataset(st, dataset)
        m = st.manifest(ds_id)
        ds = load_dataset(st, ds_id)
        official = ds.labels.get(OFFICIAL_SPLIT_COLUMN)
        split = patient_split(ds.labels["patient_id"], seed=split_seed, official_split=official)
        parts = {"all": ds.counts()}
        for name in ("train", "val", "test"):
            parts[name] = ds.counts(split.part(name))
    info = {
        "id": ds_id,
        "kind": m.kind,
        "created": m.created,
        "source": m.config.get("source", ""),
        "n": len(ds),
        "size": ds.size,
        "bytes": m.total_bytes,
        "parents": m.parents,
        "split_seed": split_seed,
        "official_split": bool(official is not None and (official > 0).any()),
        "counts": parts,
    }
    if as_json:
        _emit_json(info)
        return
    err.print(
        f"[bold]{ds_id}[/bold]  source={info['source']}  {len(ds):,} images at {ds.size}px  "
        f"({m.total_bytes / 1e6:.1f} MB)  created {m.created[:19]}",
        highlight=False,
    )
    split_note = "NIH official test list" if info["official_split"] else "patient-wise 70/10/20"
    Console().print(_counts_table(f"counts (split seed {split_seed}, {split_note})", parts))


@app.command("list")
def list_cmd(
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List dataset artifacts in the store (oldest first)."""
    with _user_errors_exit():
        st = _open_store(store)
        items = st.list("dataset")
    rows = [
        {
            "id": m.id,
            "created": m.created,
            "source": m.config.get("source", ""),
            "n": m.meta.get("n"),
            "size": m.meta.get("size"),
            "bytes": m.total_bytes,
        }
        for m in items
    ]
    if as_json:
        _emit_json({"store": st.url, "datasets": rows})
        return
    t = Table(title=f"datasets in {st.url}", title_justify="left")
    t.add_column("id", no_wrap=True)
    for col in ("created", "source", "images", "size", "MB"):
        t.add_column(col, justify="right" if col in ("images", "size", "MB") else "left")
    for r in rows:
        mb = f"{r['bytes'] / 1e6:.1f}"
        t.add_row(r["id"], r["created"][:19], r["source"], f"{r['n']:,}", f"{r['size']}", mb)
    Console().print(t)
    if not rows:
        err.print("no datasets yet: try `gdgan data phantom --n 8000 --size 64`")


# --------------------------------------------------------------------------------------------
# bring your own radiographs: one verb per publisher's layout (gdgan.data.adapters)
# --------------------------------------------------------------------------------------------
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
