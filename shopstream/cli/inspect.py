"""`shopstream inspect ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="inspect commands.", no_args_is_help=True)
