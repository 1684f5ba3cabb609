"""`shopstream config show`: the effective configuration, secrets masked."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from shopstream.cli.context import console, settings_from

app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print every setting (environment, then flags) with secrets masked."""
    shown = settings_from(ctx).masked()
    if as_json:
        console.print_json(json.dumps(shown))
        return
    table = Table("setting", "value")
    for key, value in shown.items():
        table.add_row(key, value)
    console.print(table)
