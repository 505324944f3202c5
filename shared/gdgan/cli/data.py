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
    for b in first.get("age_band", {}):
        row(f"age {b}", lambda c, b=b: c["age_band"][b])
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


KEY_MAP_HELP = (
    "Also write a local CSV mapping the stored (salted-hash) image keys to the source file names; "
    "never written to the store. Keep it private: the names embed patient ids."
)
AGE_BAND_HELP = "Add the age band (edges GDGAN_AGE_BAND_EDGES, default 40,60) to the general labels."


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
    age_band: bool = typer.Option(False, "--age-band", help=AGE_BAND_HELP),
    key_map: Path | None = typer.Option(None, "--write-key-map", help=KEY_MAP_HELP),
) -> None:
    """Ingest NIH ChestX-ray14 (CSV + PNGs) into a dataset artifact of SIZE² uint8 images.

    Decodes in parallel with an anti-aliasing resize; bad rows and unreadable files are reported
    and skipped; an interrupted ingest resumes when rerun with the same arguments.

    Example: gdgan data ingest-nih --csv Data_Entry_2017_v2020.csv --images ./images --size 64
    """

    def run(progress: Callable[[Any], None]) -> tuple[Any, Any]:
        from gdgan.data.nih import ingest_nih

        return ingest_nih(
            csv_path, images, size, workers=workers, official_lists_dir=official_lists,
            progress=progress, resume_dir=resume_dir, limit=limit, age_band=age_band,
        )  # fmt: skip

    _ingest_and_report(
        "nih", "NIH", f"ingest {size}px", run, size, store, as_json, with_labels=False, key_map=key_map
    )


def _ingest_and_report(
    source: str,
    title: str,
    bar_label: str,
    run: Callable[[Callable[[Any], None]], tuple[Any, Any]],
    size: int,
    store: str | None,
    as_json: bool,
    *,
    with_labels: bool,
    key_map: Path | None = None,
) -> None:
    """Shared tail of every ``ingest-*`` verb, so they all check --size, show progress, save, and
    report (tables or ``--json``) the same way; ``run(progress)`` returns ``(dataset, report)``.

    ``with_labels`` adds the label schema (the adapters' sources vary in it; NIH's is fixed).
    The stored dataset holds hashed image keys and a redacted report (gdgan.data.pseudonym);
    ``key_map`` asks for the local hash -> file name CSV.
    """
    from gdgan.data.dataset import SUPPORTED_SIZES
    from gdgan.progress import Progress as Prog

    if size not in SUPPORTED_SIZES:
        fail(f"--size must be one of {', '.join(map(str, SUPPORTED_SIZES))}, got {size}")
    with _user_errors_exit():
        st = _open_store(store)
        st.ping()
        with _bar(bar_label) as update:

            def on_progress(p: Prog) -> None:
                update(p.step, p.total, p.images_per_s)  # type: ignore[call-arg]

            ds, report = run(on_progress)
        meta = {"source": source, "ingest": report.to_dict(redact=True)}
        m = ds.save(st, config=ds.config, meta=meta, key_map=key_map)
    labels = ds.schema.to_dict() if with_labels else None
    if as_json:
        out = {"id": m.id, "kind": m.kind, "source": source, "n": len(ds), "size": size, "store": st.url}
        if labels is not None:
            out["labels"] = labels
        _emit_json({**out, "report": report.to_dict(), "counts": m.meta["counts"]})
        return
    err.print(report.summary(), highlight=False)
    if labels is not None:
        err.print(
            f"labels: general {labels['general'] or 'none'}; {len(labels['findings'])} findings",
            highlight=False,
        )
    err.print(_counts_table(f"{title} dataset {m.id}", {"all": m.meta["counts"]}))
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
        from gdgan.data.dataset import OFFICIAL_SPLIT_COLUMN, load_dataset, split_counts

        st = _open_store(store)
        ds_id = _resolve_dataset(st, dataset)
        m = st.manifest(ds_id)
        ds = load_dataset(st, ds_id)
        official = ds.labels.get(OFFICIAL_SPLIT_COLUMN)
        parts = {"all": ds.counts(), **split_counts(ds.labels, ds.schema, seed=split_seed)}
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


# the ingest-chexpert|mimic|padchest|vindr|csv|folder verbs live in their own module; importing it
# registers them on ``app``
from gdgan.cli import data_ingest  # noqa: E402, F401
