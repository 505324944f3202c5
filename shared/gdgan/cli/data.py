"""``gdgan data``: build, ingest and inspect datasets."""

import typer

app = typer.Typer(help="Build, ingest and inspect datasets.", no_args_is_help=True)
