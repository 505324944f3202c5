"""``gdgan evaluate`` and ``gdgan reproduce``: the paper's Tables 1–2 and Figure 3.

``evaluate`` scores given GDGAN/ACGAN models; ``reproduce`` trains one GDGAN and one ACGAN per
split itself (on that split's training part only) — the whole experiment in one command. Both
show one overall rich progress bar on stderr, print Tables 1–2 as rich tables and where the
report is; ``--json`` prints exactly one JSON object instead. Ctrl-C stops at the next step.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

err = Console(stderr=True)
# Table 2 has nine columns: never squeeze it into a pipe's default 80 columns.
out = Console(width=max(150, Console().width))


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a bad command line or environment raises while the run is being set up: answered
    with one line and exit code 2. Only checked before the run starts: once it runs, a ValueError
    or KeyError is a bug or a broken artifact and keeps its traceback (exit code 1)."""
    from gdgan.settings import SettingsError
    from gdgan.store import StoreError

    return (StoreError, SettingsError, ValueError, KeyError)


def print_tables(report: dict[str, Any], console: Console = out, harness: bool = True) -> None:
    """Tables 1 and 2 of the report as rich tables (ours next to the paper's); ``gdgan evaluate``,
    ``gdgan reproduce`` and ``gdgan demo`` all print them through here. ``harness=False``: not
    the quality-harness tables (the demo prints them as one compact table of its own)."""
    from gdgan.evaluation.report import TABLE1_HEADER, TABLE2_HEADER, TABLE2_NOTE, table1_rows, table2_rows

    try:
        label, rows1 = table1_rows(report)
    except (KeyError, TypeError) as exc:  # a report without the quality section (e.g. no GAN)
        console.print(f"(Table 1 unavailable in this report: {exc})", soft_wrap=True)
    else:
        t1 = Table(title=f"Table 1 — inception score ({label})", title_justify="left")
        for h in TABLE1_HEADER:
            t1.add_column(h, justify="right" if h != TABLE1_HEADER[0] else "left")
        for r in rows1:
            t1.add_row(*r)
        console.print(t1)
        imagenet = report["quality"]["inception_score"]["imagenet"]
        if not imagenet.get("available"):
            console.print(
                f"[yellow]ImageNet IS unavailable:[/yellow] {imagenet.get('reason')}", soft_wrap=True
            )
    repeats = (report.get("plan") or {}).get("repeats", "?")
    t2 = Table(
        title=f"Table 2 — {report.get('finding', '')} classification, {repeats} repeats",
        title_justify="left",
    )
    for h in TABLE2_HEADER:
        t2.add_column(h, justify="right" if h != TABLE2_HEADER[0] else "left")
    for r in table2_rows(report):
        t2.add_row(*r)
    console.print(t2)
    console.print(TABLE2_NOTE, soft_wrap=True)
    h = (report.get("quality") or {}).get("harness") or {}
    if harness and h.get("available"):
        from gdgan.cli.quality import print_quality

        print_quality(h, console)
    if statement := (report.get("lineage") or {}).get("statement"):
        console.print(statement, soft_wrap=True)


def _run(plan_kwargs: dict[str, Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    from gdgan.catalog import resolve_model
    from gdgan.evaluation.experiment import EvaluationCancelled, EvaluationError, run_evaluation
    from gdgan.evaluation.plan import EvaluationPlan
    from gdgan.progress import Progress as Prog
    from gdgan.store import StoreUnavailable, open_store

    stop = {"flag": False}

    def on_sigint(_sig: int, _frame: Any) -> None:
        if stop["flag"]:
            raise KeyboardInterrupt
        stop["flag"] = True
        err.print("stopping at the next step; Ctrl-C again to abort")

    try:
        from gdgan.labels import NIH_SCHEMA, schema_of

        store = open_store()
        schema = schema_of(store.manifest(plan_kwargs["dataset_id"]).meta)
        if schema != NIH_SCHEMA and plan_kwargs.get("findings") is None:  # the dataset's own findings
            plan_kwargs = {**plan_kwargs, "findings": list(schema.findings)}
        plan = EvaluationPlan(**plan_kwargs)
        for given in (plan.gdgan_model, plan.acgan_model):
            if given:
                resolve_model(store, given)  # a wrong id is the user's: say so before 30 minutes
    except _user_errors() as exc:
        _fail(str(exc).splitlines()[0] if "validation error" not in str(exc) else _pydantic_msg(exc))
        return
    old = signal.signal(signal.SIGINT, on_sigint)
    t0 = time.perf_counter()
    try:
        cols = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[msg]}"),
        )
        with Progress(*cols, console=err, transient=False, disable=False) as bar:
            task = bar.add_task("evaluation", total=1000, msg="")

            def update(p: Prog) -> None:
                bar.update(task, completed=p.step, msg=p.message[:70])

            report_id = run_evaluation(plan, store, update, lambda: stop["flag"])
    except EvaluationCancelled as exc:
        _fail(f"cancelled: {exc}")
        return
    except EvaluationError as exc:  # the data cannot support the plan (e.g. a split without positives)
        _fail(str(exc).splitlines()[0])
        return
    except StoreUnavailable as exc:  # the environment, not a bug: one line, but not 'bad input'
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGINT, old)
    wall = time.perf_counter() - t0
    report = store.get_json(report_id, "report.json")
    html_path = str(store.fetch(report_id, "report.html"))
    if as_json:
        from gdgan.evaluation.assemble import report_summary

        print(
            json.dumps(
                {
                    "id": report_id,
                    "html": html_path,
                    "wall_s": round(wall, 1),
                    **report_summary(report),
                    **(extra or {}),
                }
            )
        )
        return
    print_tables(report)
    out.print(f"report {report_id} ({wall:.0f} s): {html_path}", soft_wrap=True)


def _pydantic_msg(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        e = errors()[0]
        return f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
    return str(exc).splitlines()[0]


def evaluate(
    dataset: Annotated[str, typer.Option(help="Dataset artifact id.")],
    gdgan: Annotated[str, typer.Option(help="GDGAN model id or alias 'gdgan'.")],
    acgan: Annotated[str, typer.Option(help="ACGAN model id or alias 'acgan'.")],
    repeats: Annotated[int, typer.Option(help="Patient-wise splits.")] = 3,
    preset: Annotated[str, typer.Option(help="Evaluation preset: tiny, demo, paper.")] = "demo",
    finding: Annotated[str, typer.Option(help="Target finding.")] = "Cardiomegaly",
    share: Annotated[
        float | None, typer.Option(help="Target positive share (default: preset, 0.14).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: settings).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score given GDGAN and ACGAN models: five training sets × repeats, IS, FID, fidelity, memorisation.

    Given models were trained on one split; the report's lineage check says whether they could
    have seen a repeat's test images.
    """
    _run(
        dict(
            dataset_id=dataset,
            gdgan_model=gdgan,
            acgan_model=acgan,
            repeats=repeats,
            preset=preset,
            finding=finding,
            positive_share=share,
            seed=seed,
            device=device,
        ),
        as_json,
    )


def reproduce(
    dataset: Annotated[
        str | None, typer.Option(help="Dataset id (default: a phantom sized by the preset).")
    ] = None,
    preset: Annotated[str, typer.Option(help="tiny, demo or paper.")] = "demo",
    repeats: Annotated[int | None, typer.Option(help="Splits (default: the preset's).")] = None,
    finding: Annotated[str, typer.Option(help="Target finding.")] = "Cardiomegaly",
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: settings).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The paper's whole experiment: per split train GDGAN and ACGAN, build the five training
    sets, train the classifiers, score, and write the report."""
    from gdgan.evaluation.presets import get_eval_preset

    try:
        p = get_eval_preset(preset)
    except ValueError as exc:
        _fail(str(exc))
        return
    extra: dict[str, Any] = {}
    if dataset is None:
        from gdgan.data.phantom import PhantomConfig, make_phantom
        from gdgan.store import open_store

        cfg = PhantomConfig(n=p.phantom_n, size=p.phantom_size, seed=seed, prevalence=p.phantom_prevalence)
        err.print(f"building a phantom dataset: {cfg.n} images, {cfg.size} px (seed {seed})")
        m = make_phantom(cfg).save(open_store(), meta={"purpose": f"reproduce --preset {preset}"})
        dataset = m.id
        extra["dataset_id"] = m.id
        err.print(f"dataset {m.id}")
    _run(
        dict(
            dataset_id=dataset,
            repeats=repeats or p.repeats,
            preset=preset,
            finding=finding,
            seed=seed,
            device=device,
        ),
        as_json,
        extra,
    )
