"""``gdgan``: the root command. Each group lives in its own module."""

from __future__ import annotations

import typer

from gdgan.cli import client, data, demo, serve, stack
from gdgan.cli import evaluate as evaluate_cli
from gdgan.cli import quality as quality_cli
from gdgan.cli import report as report_cli
from gdgan.cli import store as store_cli
from gdgan.cli import train as train_cli

app = typer.Typer(
    name="gdgan",
    help="GDGAN: synthesise rare-finding chest X-rays, train and evaluate the two-stage GAN.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data.app, name="data")
app.add_typer(store_cli.app, name="store")
app.add_typer(serve.app, name="serve")
app.add_typer(serve.worker_app, name="worker")
app.command("up")(stack.up)
app.command("down")(stack.down_cmd)
app.command("status")(stack.status_cmd)
app.add_typer(client.app, name="jobs")
app.command("generate")(client.generate)
app.command("demo")(demo.demo)
app.add_typer(train_cli.app, name="train")
app.command("sample")(train_cli.sample)
app.command("evaluate")(evaluate_cli.evaluate)
app.command("reproduce")(evaluate_cli.reproduce)
app.command("quality")(quality_cli.quality)
app.add_typer(report_cli.app, name="report")


if __name__ == "__main__":
    app()
