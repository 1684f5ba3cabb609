"""`shopstream schemas register|check|list`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from schemas import load_catalog
from shopstream.cli.context import console, settings_from
from shopstream.registry import check_all, register_all
from shopstream.serde import make_registry_client

app = typer.Typer(help="Register and check the event schemas.", no_args_is_help=True)


@app.command("register")
def register(ctx: typer.Context) -> None:
    """Register every local schema (subjects at BACKWARD_TRANSITIVE compatibility)."""
    registry = make_registry_client(settings_from(ctx).registry_config())
    table = Table("subject", "id", "version", "compatibility")
    for status in register_all(registry):
        table.add_row(status.subject, str(status.schema_id), str(status.version),
                      status.compatibility or "")
    console.print(table)


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Ask the registry whether every local schema is compatible with what is registered."""
    registry = make_registry_client(settings_from(ctx).registry_config())
    table = Table("subject", "latest version", "compatibility", "result")
    for status in check_all(registry):
        table.add_row(status.subject, str(status.version or "-"), status.compatibility or "-",
                      status.outcome)
    console.print(table)


@app.command("list")
def list_local(
    with_fields: Annotated[bool, typer.Option("--fields", help="Show each field.")] = False,
) -> None:
    """The local event catalog: event type, topic, key, subject."""
    table = Table("event type", "topic", "key", "subject")
    for spec in load_catalog():
        table.add_row(spec.name, spec.topic, spec.key_field, spec.subject())
        if with_fields:
            for field in spec.schema["fields"]:
                table.add_row("", "", f"  {field['name']}", field.get("doc", ""))
    console.print(table)
