"""``gdgan quality MODEL...``: score stored generators with the dataset's real-trained judge.

A thin wrapper over :func:`gdgan.evaluation.quality_run.score_models`: a progress line on
stderr, one table per section (distances, GAN-test, with the real-test ceiling beside them),
``--json`` for exactly one JSON object on stdout, and a one-line error (exit 2) for bad input.
The figures are kept as a ``quality`` artifact (parents: the models and the judge).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True)
out = Console(width=max(120, Console().width))


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def print_quality(q: dict[str, Any], console: Console = out) -> None:
    """Distances and GAN-test tables, each row beside the real-test ceiling."""
    from gdgan.evaluation.harness_report import distance_rows, gan_test_rows

    t = Table(title=f"Distances to {q['n']} real test images (judge features)", title_justify="left")
    for h in ("set", "FD", "relative FD", "KID", "precision", "recall"):
        t.add_column(h, justify="left" if h == "set" else "right")
    for row in distance_rows(q):
        t.add_row(*row)
    console.print(t)
    c = q["ceiling"]
    g = Table(title=f"GAN-test ({q['finding']}: {c.get('finding_truth', 'label')})", title_justify="left")
    heads = ("set", "gender acc", "view acc", "AUC paired", "AUC independent", "CTR>0.5 pos", "CTR>0.5 neg")
    for h in heads:
        g.add_column(h, justify="left" if h == "set" else "right")
    for row in gan_test_rows(q):
        g.add_row(*row)
    console.print(g)


def quality(
    models: list[str] = typer.Argument(
        ..., help="Model ids, aliases (gdgan, acgan, stage1, stage2) or run ids."
    ),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset id (default: the model's)."),
    split_seed: int | None = typer.Option(None, "--split-seed", help="Split seed (default: the model's)."),
    n: int = typer.Option(500, "--n", min=5, help="Images per set."),
    seed: int = typer.Option(0, "--seed", help="Seed of every draw."),
    judge: str = typer.Option("demo", "--judge", help="Judge preset: tiny | demo."),
    finding: str = typer.Option("Cardiomegaly", "--finding", help="The finding GAN-test asks for."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Image quality of trained generators: distances, GAN-test, and the real-test ceiling."""
    from gdgan.evaluation.quality_run import score_models, store_scores
    from gdgan.progress import Progress as Prog
    from gdgan.settings import SettingsError
    from gdgan.store import StoreError, open_store

    def show(p: Prog) -> None:
        err.print(f"{p.phase} {p.step}/{p.total} {p.message}".rstrip(), highlight=False)

    try:
        store = open_store()
        q = score_models(
            store,
            list(models),
            dataset=dataset,
            split_seed=split_seed,
            n=n,
            seed=seed,
            judge=judge,
            finding=finding,
            progress=show,
        )
        qid = store_scores(store, q)
    except (StoreError, SettingsError, ValueError, KeyError) as exc:
        _fail(str(exc).splitlines()[0])
        return
    d = {"id": qid, **q.to_dict(), "headline": q.headline()}
    if as_json:
        print(json.dumps(d))
        return
    print_quality(d)
    out.print(f"quality {qid} ({q.seconds:.0f} s, {q.cpu_seconds:.0f} CPU-s)", soft_wrap=True)
