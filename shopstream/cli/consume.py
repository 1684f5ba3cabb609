"""`shopstream consume ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="consume commands.", no_args_is_help=True)
