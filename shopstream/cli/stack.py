"""`shopstream stack ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="stack commands.", no_args_is_help=True)
