"""`shopstream produce ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="produce commands.", no_args_is_help=True)
