"""`shopstream topics create|list|describe`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from shopstream.cli.context import console, settings_from
from shopstream.errors import UsageError
from shopstream.kafka.clients import METADATA_TIMEOUT_S, check_broker, make_admin
from shopstream.kafka.topics import DEFAULT_PARTITIONS, create_topics, project_topics

app = typer.Typer(help="Create and list the project's topics.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    partitions: Annotated[
        int, typer.Option(min=1, help="Partitions of each event topic (a group scales to this).")
    ] = DEFAULT_PARTITIONS,
    replication_factor: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Create cart-events, order-events and their .dlq topics (existing ones are kept)."""
    settings = settings_from(ctx)
    outcome = create_topics(
        settings,
        project_topics(partitions, replication_factor, settings.shopstream_topic_prefix),
    )
    for name, result in outcome.items():
        console.print(f"{name}: {result}")


@app.command("list")
def list_topics(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    all_topics: Annotated[bool, typer.Option("--all", help="Include internal topics.")] = False,
) -> None:
    """Topics on the broker with their partition counts."""
    settings = settings_from(ctx)
    check_broker(settings)
    metadata = make_admin(settings).list_topics(timeout=METADATA_TIMEOUT_S)
    rows = sorted(
        (name, len(topic.partitions))
        for name, topic in metadata.topics.items()
        if all_topics or not name.startswith(("_", "kafkasql-"))
    )
    if as_json:
        console.print_json(json.dumps([{"topic": n, "partitions": p} for n, p in rows]))
        return
    table = Table("topic", "partitions")
    for name, count in rows:
        table.add_row(name, str(count))
    console.print(table)


@app.command("describe")
def describe(ctx: typer.Context, topic: str) -> None:
    """Partitions of one topic with leader and replicas."""
    settings = settings_from(ctx)
    check_broker(settings)
    metadata = make_admin(settings).list_topics(topic=topic, timeout=METADATA_TIMEOUT_S)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise UsageError(f"unknown topic {topic!r} (see 'shopstream topics list')")
    table = Table("partition", "leader", "replicas", "in-sync")
    for pid, part in sorted(found.partitions.items()):
        table.add_row(str(pid), str(part.leader), str(part.replicas), str(part.isrs))
    console.print(table)
