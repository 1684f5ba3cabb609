"""`shopstream query ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="query commands.", no_args_is_help=True)
