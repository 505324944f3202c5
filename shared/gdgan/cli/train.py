"""``gdgan train stage1|stage2|gdgan|acgan`` and ``gdgan sample``.

Thin wrappers over :func:`gdgan.training.api.train` and
:func:`gdgan.training.sampling.load_generator`: a rich progress bar on stderr, ``--json`` for
one JSON object on stdout, and a one-line error with exit code 2 for bad input. Ctrl-C stops
training at the next step with a checkpoint; ``--resume RUN_ID`` continues it with the
arguments the run was started with (stored by :mod:`gdgan.training.runs`).

``--nproc-per-node N`` (and ``--nnodes M --rdzv-endpoint HOST:PORT`` on several machines)
re-runs the same command under ``torchrun``: N data-parallel ranks per node
(:mod:`gdgan.training.distributed`); rank 0 draws the progress bar and prints the result.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from gdgan.progress import Progress as Prog

app = typer.Typer(help="Train GDGAN (stage 1, stage 2, both) and the ACGAN baseline.", no_args_is_help=True)
err = Console(stderr=True)


def fail(message: str) -> None:
    """One line on stderr, exit code 2 (bad input / unknown id)."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _user_errors() -> tuple[type[BaseException], ...]:
    from gdgan.data.dataset import DatasetError
    from gdgan.labels import LabelError
    from gdgan.settings import SettingsError
    from gdgan.store import StoreError
    from gdgan.training.presets import ConfigError

    return (ConfigError, LabelError, StoreError, DatasetError, SettingsError, ValueError)


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[Prog], None]]:
    if not enabled:
        yield lambda _p: None
        return
    cols = (
        TextColumn("{task.description:<7}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[ips]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
    )
    with Progress(*cols, console=err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(p: Prog) -> None:
            if p.phase not in tasks:
                tasks[p.phase] = bar.add_task(p.phase, total=p.total, ips="", losses="")
            ips = f"{p.images_per_s:.0f} img/s" if p.images_per_s else ""
            losses = " ".join(f"{k}={v:.3g}" for k, v in list(p.losses.items())[:4])
            bar.update(tasks[p.phase], completed=p.step, total=p.total, ips=ips, losses=losses)

        yield update


@dataclass
class _Flags:
    """The flags of one ``gdgan train`` call that a stored run can supply on ``--resume``."""

    dataset: str | None
    preset: str | None
    split_seed: int | None
    sets: list[str]
    resume: str | None
    stage1: str | None = None


@dataclass
class _Ranks:
    """torchrun's flags of one ``gdgan train`` call (all 1 / None: one process)."""

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    max_restarts: int = 0


def _flag_args(kind: str, f: _Flags, as_json: bool, device: str | None) -> list[str]:
    """The ``gdgan train KIND ...`` arguments every rank runs (without torchrun's flags)."""
    args = ["train", kind]
    for flag, val in (
        ("--dataset", f.dataset),
        ("--preset", f.preset),
        ("--split-seed", f.split_seed),
        ("--resume", f.resume),
        ("--stage1", f.stage1),
        ("--device", device),
    ):
        if val is not None:
            args += [flag, str(val)]
    for kv in f.sets:
        args += ["--set", kv]
    return args + (["--json"] if as_json else [])


def _launch(kind: str, flags: _Flags, as_json: bool, device: str | None, ranks: _Ranks) -> None:
    """Run this very command on ``ranks`` through torchrun and exit with its exit code."""
    import subprocess

    from gdgan.store import new_id
    from gdgan.training.launch import Launch, torchrun_argv

    if ranks.nnodes > 1 and not flags.resume:
        fail("--resume RUN_ID is required with --nnodes > 1: every node must train the same run")
    run_id = flags.resume or new_id("run")  # one id for every rank (and every restart)
    try:
        launch = Launch(ranks.nproc_per_node, ranks.nnodes, ranks.rdzv_endpoint, run_id, ranks.max_restarts)
    except ValueError as exc:
        fail(str(exc))
        return
    flags = _Flags(flags.dataset, flags.preset, flags.split_seed, flags.sets, run_id, flags.stage1)
    argv = torchrun_argv(launch, "gdgan.cli.main", _flag_args(kind, flags, as_json, device))
    rc = subprocess.call(argv)
    if rc:
        err.print(f"distributed run {run_id} ended with exit code {rc}; resume with --resume {run_id}")
        raise typer.Exit(rc)


def _resolve_args(store: Any, kind: str, f: _Flags) -> tuple[str, str, int, dict[str, str], str | None]:
    """(dataset, preset, split seed, overrides, stage 1): from the flags, and on ``--resume`` of a
    stored run from that run for every flag not given (a given flag that contradicts the run is
    refused by train())."""
    from gdgan.training.presets import parse_overrides
    from gdgan.training.runs import load_run_record

    overrides = parse_overrides(f.sets)
    rec = load_run_record(store, f.resume) if f.resume else None
    if rec is None:
        if not f.dataset:
            fail("--dataset is required (unless --resume names a stored run)")
        if kind == "stage2" and not f.stage1:
            fail("--stage1 is required (unless --resume names a stored run)")
        return str(f.dataset), f.preset or "demo", f.split_seed or 0, overrides, f.stage1
    if rec.kind != kind:
        fail(
            f"run {f.resume} is a {rec.kind!r} run: resume it with gdgan train {rec.kind} --resume {f.resume}"
        )
    if not (f.dataset or rec.dataset_id):
        fail(f"run {f.resume} was trained on an in-memory dataset: pass --dataset")
    seed = rec.split_seed if f.split_seed is None and rec.split_seed is not None else (f.split_seed or 0)
    return (
        str(f.dataset or rec.dataset_id),
        f.preset or rec.preset,
        seed,
        {**rec.overrides, **overrides},
        f.stage1 or rec.stage1_model,
    )


def _run(kind: str, flags: _Flags, as_json: bool, device: str | None, ranks: _Ranks | None = None) -> None:
    from gdgan.store import open_store
    from gdgan.training import distributed as dd
    from gdgan.training.api import train

    if ranks is not None and ranks.nproc_per_node * ranks.nnodes > 1 and not dd.from_env().enabled:
        _launch(kind, flags, as_json, device, ranks)
        return
    main_rank = dd.from_env().is_main

    stop = {"flag": False}

    def on_sigint(_sig: int, _frame: Any) -> None:
        if stop["flag"]:
            raise KeyboardInterrupt
        stop["flag"] = True
        err.print("stopping at the next step (checkpointing); Ctrl-C again to abort")

    try:
        from gdgan.settings import resolve_device

        device = resolve_device(device, "--device") if device else None  # None: GDGAN_DEVICE
        store = open_store()
        dataset, preset, split_seed, overrides, stage1 = _resolve_args(store, kind, flags)
        old = signal.signal(signal.SIGINT, on_sigint)
        try:
            with _progress_bar(main_rank and (not as_json or sys.stderr.isatty())) as bar:
                result = train(
                    kind,
                    dataset,
                    store=store,
                    preset=preset,
                    overrides=overrides,
                    split_seed=split_seed,
                    stage1_model=stage1,
                    run_id=flags.resume,
                    progress=bar,
                    should_stop=lambda: stop["flag"],
                    device=device,
                )
        finally:
            signal.signal(signal.SIGINT, old)
    except _user_errors() as exc:
        fail(str(exc))
        return
    if not main_rank:  # rank 0 speaks for the run
        return
    if as_json:
        print(json.dumps(result.to_dict()))
    elif result.status == "cancelled":
        err.print(f"cancelled; resume with: gdgan train {kind} --resume {result.run_id}")
    else:
        for name, mid in result.model_ids.items():
            print(f"{name}: {mid}")
    if result.status == "cancelled":
        raise typer.Exit(1)


DATASET = typer.Option(None, "--dataset", help="Dataset artifact id (on --resume: the run's).")
PRESET = typer.Option(None, "--preset", help="tiny | demo | paper (default demo; on --resume: the run's).")
SPLIT = typer.Option(
    None,
    "--split-seed",
    help="Patient-wise split seed, training uses its train part (default 0; on --resume: the run's).",
)
SET = typer.Option(
    [], "--set", help="Override a config field: key=value (repeatable; on --resume added to the run's)."
)
RESUME = typer.Option(
    None,
    "--resume",
    help="Run id to resume: dataset, preset, split seed, --set values and stage-1 model come from "
    "the run, and a flag that contradicts them is an error. An unknown id keys a new run.",
)
JSON = typer.Option(False, "--json", help="Print one JSON object on stdout.")
DEVICE = typer.Option(None, "--device", help="cpu | cuda (default: GDGAN_DEVICE / auto).")
NPROC = typer.Option(
    1, "--nproc-per-node", min=1, help="Data-parallel ranks on this machine (torchrun; one per GPU)."
)
NNODES = typer.Option(1, "--nnodes", min=1, help="Machines in the run (each runs this same command).")
RDZV = typer.Option(None, "--rdzv-endpoint", help="HOST:PORT where the nodes meet (c10d rendezvous).")
RESTARTS = typer.Option(0, "--max-restarts", min=0, help="Restarts of all ranks after one fails (resumes).")


@app.command("stage1")
def stage1_cmd(
    dataset: str | None = DATASET,
    preset: str | None = PRESET,
    split_seed: int | None = SPLIT,
    set_: list[str] = SET,
    resume: str | None = RESUME,
    json_: bool = JSON,
    device: str | None = DEVICE,
    nproc_per_node: int = NPROC,
    nnodes: int = NNODES,
    rdzv_endpoint: str | None = RDZV,
    max_restarts: int = RESTARTS,
) -> None:
    """Train GDGAN stage 1: G1(z, gender/view) against D1."""
    _run(
        "stage1",
        _Flags(dataset, preset, split_seed, set_, resume),
        json_,
        device,
        _Ranks(nproc_per_node, nnodes, rdzv_endpoint, max_restarts),
    )


@app.command("stage2")
def stage2_cmd(
    dataset: str | None = DATASET,
    stage1: str | None = typer.Option(
        None, "--stage1", help="Stage-1 (or gdgan) model id to refine (on --resume: the run's)."
    ),
    preset: str | None = PRESET,
    split_seed: int | None = SPLIT,
    set_: list[str] = SET,
    resume: str | None = RESUME,
    json_: bool = JSON,
    device: str | None = DEVICE,
    nproc_per_node: int = NPROC,
    nnodes: int = NNODES,
    rdzv_endpoint: str | None = RDZV,
    max_restarts: int = RESTARTS,
) -> None:
    """Train GDGAN stage 2 (G2/D2) on top of a frozen stage-1 model."""
    _run(
        "stage2",
        _Flags(dataset, preset, split_seed, set_, resume, stage1),
        json_,
        device,
        _Ranks(nproc_per_node, nnodes, rdzv_endpoint, max_restarts),
    )


@app.command("gdgan")
def gdgan_cmd(
    dataset: str | None = DATASET,
    preset: str | None = PRESET,
    split_seed: int | None = SPLIT,
    set_: list[str] = SET,
    resume: str | None = RESUME,
    json_: bool = JSON,
    device: str | None = DEVICE,
    nproc_per_node: int = NPROC,
    nnodes: int = NNODES,
    rdzv_endpoint: str | None = RDZV,
    max_restarts: int = RESTARTS,
) -> None:
    """Train both GDGAN stages and write the bundle artifact."""
    _run(
        "gdgan",
        _Flags(dataset, preset, split_seed, set_, resume),
        json_,
        device,
        _Ranks(nproc_per_node, nnodes, rdzv_endpoint, max_restarts),
    )


@app.command("acgan")
def acgan_cmd(
    dataset: str | None = DATASET,
    preset: str | None = PRESET,
    split_seed: int | None = SPLIT,
    set_: list[str] = SET,
    resume: str | None = RESUME,
    json_: bool = JSON,
    device: str | None = DEVICE,
    nproc_per_node: int = NPROC,
    nnodes: int = NNODES,
    rdzv_endpoint: str | None = RDZV,
    max_restarts: int = RESTARTS,
) -> None:
    """Train the one-stage ACGAN baseline (all labels)."""
    _run(
        "acgan",
        _Flags(dataset, preset, split_seed, set_, resume),
        json_,
        device,
        _Ranks(nproc_per_node, nnodes, rdzv_endpoint, max_restarts),
    )


def sample(
    model: str = typer.Argument(..., help="Model id or alias (gdgan, acgan, stage1, stage2)."),
    n: int = typer.Option(16, "--n", min=1, max=4096),
    finding: str = typer.Option("No Finding", "--finding", help="Finding name, or 'No Finding'."),
    gender: str | None = typer.Option(None, "--gender", help="M or F (default: the finding's mix)."),
    view: str | None = typer.Option(None, "--view", help="PA or AP (default: the finding's mix)."),
    age_band: str | None = typer.Option(
        None, "--age-band", help="An age band of the model, e.g. 40-59 (default: the finding's mix)."
    ),
    seed: int = typer.Option(0, "--seed"),
    stage: int | None = typer.Option(None, "--stage", help="1 or 2 (GDGAN; default: the last stage)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    device: str | None = DEVICE,
    json_: bool = JSON,
) -> None:
    """Sample N images of a label from a trained model: PNGs, labels.csv and grid.png."""
    from gdgan.imageset import folder_writer
    from gdgan.imaging import grid_png_bytes
    from gdgan.store import open_store
    from gdgan.training.sampling import load_generator

    try:
        from gdgan.settings import resolve_device

        dev = resolve_device(device, "--device" if device else None)  # GDGAN_DEVICE when not given
        gen = load_generator(open_store(), model, device=dev)
        batch = gen.sample(
            n, finding=finding, gender=gender, view=view, seed=seed, stage=stage, age_band=age_band
        )
    except _user_errors() as exc:
        fail(str(exc))
        return
    with folder_writer(out, gen.model_id, batch.seed, stage or max(gen.stages)) as w:
        w.add_batch(batch)
    (out / "grid.png").write_bytes(grid_png_bytes(batch.images, batch.captions(), scale=2))
    summary = {"id": gen.model_id, "kind": gen.kind, "n": n, "seed": batch.seed, "out": str(out)}
    print(json.dumps(summary) if json_ else f"wrote {n} images, labels.csv and grid.png to {out}")
