"""`shopstream dlq redrive`: re-produce chosen dead letters to their original topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from shopstream.cli.context import console, settings_from
from shopstream.cli.output import FormatOpt, OutputFormat, print_json
from shopstream.cli.params import finite
from shopstream.errors import UsageError
from shopstream.inspection.cluster import DEFAULT_TIMEOUT_S
from shopstream.inspection.offset_spec import parse_time
from shopstream.redrive import Coordinates, RedriveReport, Selection, redrive

app = typer.Typer(help="Dead letters: re-produce them to their topic.", no_args_is_help=True)

TIME_HELP = "ISO-8601 (2026-11-29T15:00:00Z), epoch ms, or relative (-1h, -30m)"


@app.command("redrive")
def redrive_cmd(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="order-events or cart-events (or its .dlq).")],
    group: Annotated[
        str | None, typer.Option("--group", "-g", help="Only letters this group refused.")
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only this reason, e.g. illegal-transition.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help=f"Dead-lettered at or after: {TIME_HELP}.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help=f"Dead-lettered at or before: {TIME_HELP}.")
    ] = None,
    at: Annotated[
        list[str] | None,
        typer.Option("--at", help="This dead letter: OFFSET or PARTITION:OFFSET (repeatable)."),
    ] = None,
    all_letters: Annotated[
        bool, typer.Option("--all", help="Every dead letter of the topic (no filter).")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="At most N letters.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be sent; send nothing.")
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, callback=finite, help="Seconds to wait for Kafka."),
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    """Re-produce chosen dead letters to their original topic with a new event_id and
    headers linking them to the dead letter; letters already redriven are not sent again."""
    filtered = any(v is not None for v in (group, reason, since, until)) or bool(at)
    if not filtered and not all_letters:
        raise UsageError(
            "choose the letters: --group, --reason, --since, --until or --at "
            "(or --all for every one)"
        )
    now = datetime.now(UTC)
    selection = Selection(
        topic=topic,
        group=group,
        reason=reason,
        since_ms=parse_time(since, now) if since is not None else None,
        until_ms=parse_time(until, now) if until is not None else None,
        at=tuple(Coordinates.parse(text) for text in at or ()),
        limit=limit,
    )
    report = redrive(settings_from(ctx), selection, dry_run=dry_run, timeout=timeout)
    if fmt is OutputFormat.json:
        print_json(report.to_json())
        return
    console.print(_table(report), highlight=False)


def _table(report: RedriveReport) -> Table:
    verb = "would send" if report.dry_run else "sent"
    count = report.to_json()["would_send" if report.dry_run else "sent"]
    title = (
        f"{report.dlq_topic}: {len(report.items)} chosen, {count} {verb}, "
        f"{report.to_json()['already_redriven']} already redriven"
    )
    table = Table(
        "dead letter",
        "group",
        "reason",
        "type",
        "key",
        "status",
        "new event id",
        "to",
        title=title,
        title_justify="left",
    )
    for item in report.items:
        m = item.letter.message
        to = (
            f"{item.topic}:{item.partition}@{item.offset}"
            if item.offset is not None
            else (item.topic or "-")
        )
        table.add_row(
            f"{m.partition}@{m.offset}",
            item.letter.group or "-",
            item.letter.reason,
            m.event_type or "-",
            m.key or "-",
            item.status + (f" ({item.note})" if item.note else ""),
            item.event_id or "-",
            to,
        )
    return table
