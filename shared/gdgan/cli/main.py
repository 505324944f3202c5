"""``gdgan``: the root command. Each group lives in its own module."""

from __future__ import annotations

import typer

from gdgan.cli import data

app = typer.Typer(
    name="gdgan",
    help="GDGAN: synthesise rare-finding chest X-rays, train and evaluate the two-stage GAN.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data.app, name="data")


if __name__ == "__main__":
    app()
