"""`shopstream schemas register|check|list`."""

from __future__ import annotations

from typing import Annotated

import typer
from confluent_kafka.schema_registry import SchemaRegistryClient
from rich.table import Table

from schemas import SchemaCatalog, load_catalog
from shopstream.cli.context import console, settings_from
from shopstream.errors import UsageError
from shopstream.registry.admin import IncompatibleSchema, check_one, check_registry, register_all
from shopstream.serde import make_registry_client

app = typer.Typer(help="Register and check the event schemas.", no_args_is_help=True)

TopicPrefix = Annotated[
    str,
    typer.Option(
        "--topic-prefix",
        help="Work on topics <prefix><topic>, i.e. subjects <prefix><topic>-<record> "
        "(an isolated set of subjects on a shared registry).",
    ),
]


def _catalog(topic_prefix: str) -> SchemaCatalog:
    try:
        return load_catalog().with_topic_prefix(topic_prefix)
    except ValueError as exc:
        raise UsageError(f"--topic-prefix: {exc}") from None


def _checked_registry(ctx: typer.Context) -> SchemaRegistryClient:
    settings = settings_from(ctx)
    check_registry(settings)
    return make_registry_client(settings.registry_config())


@app.command("register")
def register(ctx: typer.Context, topic_prefix: TopicPrefix = "") -> None:
    """Register every local schema (subjects at BACKWARD_TRANSITIVE compatibility)."""
    catalog = _catalog(topic_prefix)
    registry = _checked_registry(ctx)
    table = Table("subject", "id", "version", "compatibility")
    for status in register_all(registry, catalog):
        table.add_row(
            status.subject, str(status.schema_id), str(status.version), status.compatibility or ""
        )
    console.print(table)


@app.command("check")
def check(ctx: typer.Context, topic_prefix: TopicPrefix = "") -> None:
    """Ask the registry whether every local schema is compatible with what is registered.

    Checks every subject, prints the table, then fails if any is incompatible.
    """
    catalog = _catalog(topic_prefix)
    registry = _checked_registry(ctx)
    table = Table("subject", "latest version", "compatibility", "result")
    refused: list[IncompatibleSchema] = []
    for spec in catalog:
        try:
            status = check_one(registry, spec)
        except IncompatibleSchema as exc:
            refused.append(exc)
            table.add_row(spec.subject(), "", "", "INCOMPATIBLE")
            continue
        table.add_row(
            status.subject, str(status.version or "-"), status.compatibility or "-", status.outcome
        )
    console.print(table)
    if len(refused) == 1:
        raise refused[0]
    if refused:
        raise IncompatibleSchema(
            f"{len(refused)} subjects are incompatible: " + "; ".join(e.message for e in refused)
        )


@app.command("list")
def list_local(
    with_fields: Annotated[bool, typer.Option("--fields", help="Show each field.")] = False,
    topic_prefix: TopicPrefix = "",
) -> None:
    """The local event catalog: event type, topic, key, subject."""
    table = Table("event type", "topic", "key", "subject")
    for spec in _catalog(topic_prefix):
        table.add_row(spec.name, spec.topic, spec.key_field, spec.subject())
        if with_fields:
            for field in spec.schema["fields"]:
                table.add_row("", "", f"  {field['name']}", field.get("doc", ""))
    console.print(table)
