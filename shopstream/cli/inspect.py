"""`shopstream inspect ...`: look at topics, events, groups, schemas and dead letters.

Every sub-command only reads. Readers assign partitions and never subscribe, so no
consumer group is joined or created and no offset is committed; admin calls only
list and describe; the database is opened read-only.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from types import FrameType
from typing import Annotated

import typer

from shopstream.cli.context import console, settings_from
from shopstream.cli.output import (
    FormatOpt,
    OutputFormat,
    StreamFormat,
    StreamFormatOpt,
    print_json,
)
from shopstream.cli.params import finite
from shopstream.errors import UsageError
from shopstream.inspection import render
from shopstream.inspection.cluster import DEFAULT_TIMEOUT_S
from shopstream.inspection.consumer_groups import group_lag, list_groups
from shopstream.inspection.dlq_reader import read_dead_letters
from shopstream.inspection.offset_spec import End, OffsetSpec, parse_offset_spec
from shopstream.inspection.peek import MessageFilter, PeekRequest, peek
from shopstream.inspection.reader import ReadPlan
from shopstream.inspection.timeline import order_timeline
from shopstream.inspection.topic_info import describe_topic, list_topics
from shopstream.registry.admin import check_registry
from shopstream.registry.lookup import RegistryBrowser
from shopstream.serde import make_registry_client
from shopstream.terminal import cell, printable

app = typer.Typer(
    help="Read-only views: topics, decoded events, consumer groups and lag, schemas, DLQs.",
    no_args_is_help=True,
)


TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        callback=finite,
        help="Seconds to wait for the broker or registry.",
    ),
]
OFFSET_HELP = (
    "Where to start in each partition: beginning, end, N, -N (N before the end), "
    "+N (N after the beginning), @TIME (ISO-8601, epoch ms, or relative: @-1h, @-30m)."
)
PartitionOpt = Annotated[
    list[int] | None,
    typer.Option("--partition", "-p", min=0, help="Only this partition (repeatable)."),
]
CountOpt = Annotated[
    int | None,
    typer.Option("--count", "-n", min=1, help="Stop after N events (default: no limit)."),
]
KeyOpt = Annotated[str | None, typer.Option("--key", "-k", help="Only events with this key.")]
TypeOpt = Annotated[
    str | None, typer.Option("--type", "-t", help="Only this event type, e.g. OrderPaid.")
]


def _note(text: str) -> None:
    """One unwrapped line for people on stderr (stdout stays machine-readable)."""
    sys.stderr.write(f"note: {printable(' '.join(text.split()))}\n")
    sys.stderr.flush()


# -- topics -----------------------------------------------------------------------


@app.command("topics")
def topics_cmd(
    ctx: typer.Context,
    all_topics: Annotated[bool, typer.Option("--all", help="Include internal topics.")] = False,
    fmt: FormatOpt = OutputFormat.table,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """Every topic with partitions and messages (end minus start offsets)."""
    found = list_topics(settings_from(ctx), include_internal=all_topics, timeout=timeout)
    if fmt is OutputFormat.json:
        print_json([topic.to_json() for topic in found])
    else:
        console.print(render.topics_table(found))


@app.command("topic")
def topic_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    fmt: FormatOpt = OutputFormat.table,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """One topic: per partition leader, offsets, first/last timestamp; non-default configs."""
    detail = describe_topic(settings_from(ctx), name, timeout=timeout)
    if fmt is OutputFormat.json:
        print_json(detail.to_json())
        return
    for table in render.topic_tables(detail):
        console.print(table)


# -- events -------------------------------------------------------------------------


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM while the block runs (handlers restored after)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def _handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stream_events(
    request: PeekRequest, fmt: StreamFormat, ctx: typer.Context, timeout: float
) -> None:
    settings = settings_from(ctx)
    writer = render.message_writer(fmt.value, sys.stdout)

    def on_start(plan: ReadPlan) -> None:
        if request.follow:
            _note(f"following {plan.describe()} (Ctrl-C to stop)")
        writer.begin()

    try:
        with (
            stop_on_signals() as stop,
            closing(
                peek(settings, request, stop=stop, timeout=timeout, on_start=on_start)
            ) as messages,
        ):
            for message in messages:
                writer.write(message)
            writer.end()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    """The reader of our output went away (``| head``): stop writing quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _request(
    topic: str,
    offset: str,
    partition: list[int] | None,
    count: int | None,
    key: str | None,
    event_type: str | None,
    follow: bool,
    default_start: OffsetSpec | None = None,
) -> PeekRequest:
    start = parse_offset_spec(offset) if offset or default_start is None else default_start
    return PeekRequest(
        topic=topic,
        start=start,
        partitions=tuple(partition) if partition else None,
        count=count,
        follow=follow,
        only=MessageFilter(key=key, event_type=event_type),
    )


@app.command("peek")
def peek_cmd(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic to read.")],
    offset: Annotated[str, typer.Option("--offset", "-o", help=OFFSET_HELP)] = "beginning",
    partition: PartitionOpt = None,
    count: CountOpt = None,
    key: KeyOpt = None,
    event_type: TypeOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-F", help="Keep reading past the end until Ctrl-C.")
    ] = False,
    fmt: StreamFormatOpt = StreamFormat.table,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """Decoded events from an offset on; stops at the end of every partition."""
    request = _request(topic, offset, partition, count, key, event_type, follow)
    _stream_events(request, fmt, ctx, timeout)


@app.command("tail")
def tail_cmd(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic to follow.")],
    offset: Annotated[str, typer.Option("--offset", "-o", help=OFFSET_HELP)] = "",
    partition: PartitionOpt = None,
    count: CountOpt = None,
    key: KeyOpt = None,
    event_type: TypeOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Keep reading until Ctrl-C.")
    ] = True,
    fmt: StreamFormatOpt = StreamFormat.table,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """Follow a topic from its end (or --offset), printing each event as it arrives."""
    request = _request(topic, offset, partition, count, key, event_type, follow, End())
    _stream_events(request, fmt, ctx, timeout)


# -- groups -------------------------------------------------------------------------


@app.command("groups")
def groups_cmd(
    ctx: typer.Context, fmt: FormatOpt = OutputFormat.table, timeout: TimeoutOpt = DEFAULT_TIMEOUT_S
) -> None:
    """Consumer groups with their state and members."""
    found = list_groups(settings_from(ctx), timeout=timeout)
    if fmt is OutputFormat.json:
        print_json([group.to_json() for group in found])
    else:
        console.print(render.groups_table(found))


@app.command("lag")
def lag_cmd(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(help="Consumer group id.")],
    fmt: FormatOpt = OutputFormat.table,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """Per partition: committed offset, end offset, lag (and the database's offset)."""
    lag = group_lag(settings_from(ctx), group, timeout=timeout)
    if lag.db_note:
        _note(f"database offsets not shown: {lag.db_note}")
    if fmt is OutputFormat.json:
        print_json(lag.to_json())
    else:
        console.print(render.lag_table(lag))


# -- schemas ------------------------------------------------------------------------


@app.command("schemas")
def schemas_cmd(
    ctx: typer.Context,
    subject: Annotated[
        str | None, typer.Argument(help="Print this subject's schema (default: list subjects).")
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="Version (default: latest).")
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Registry subjects with versions, ids and compatibility; or one version's schema."""
    settings = settings_from(ctx)
    check_registry(settings)
    browser = RegistryBrowser(make_registry_client(settings.registry_config()))
    if subject is None:
        if version is not None:
            raise UsageError("--version needs a SUBJECT (shopstream inspect schemas SUBJECT -v N)")
        subjects = browser.subjects()
        if fmt is OutputFormat.json:
            print_json([info.to_json() for info in subjects])
        else:
            console.print(render.subjects_table(subjects))
        return
    detail = browser.schema_version(subject, version)
    if fmt is OutputFormat.json:
        print_json(detail.to_json())
        return
    console.print(
        cell(
            f"{detail.subject} version {detail.version} (id {detail.schema_id}, "
            f"{detail.schema_type})"
        ),
        highlight=False,
    )
    print_json(detail.schema)


# -- dead letters ---------------------------------------------------------------------


@app.command("dlq")
def dlq_cmd(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="order-events or order-events.dlq (any topic).")],
    offset: Annotated[str, typer.Option("--offset", "-o", help=OFFSET_HELP)] = "beginning",
    count: CountOpt = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only this reason, e.g. unknown-order.")
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """Dead letters grouped by reason, with their group and original coordinates."""
    report = read_dead_letters(
        settings_from(ctx),
        topic,
        start=parse_offset_spec(offset),
        count=count,
        reason=reason,
        timeout=timeout,
    )
    if fmt is OutputFormat.json:
        print_json(report.to_json())
        return
    for table in render.dlq_tables(report):
        console.print(table)


# -- the services' outbox ------------------------------------------------------------


@app.command("outbox")
def outbox_cmd(
    ctx: typer.Context,
    fmt: FormatOpt = OutputFormat.table,
    sample: Annotated[
        int, typer.Option(min=1, help="Lag over this many most recently sent rows.")
    ] = 1000,
) -> None:
    """The services' outbox: pending rows, and the relay's commit → Kafka lag."""
    from sqlalchemy import inspect as inspect_db
    from sqlalchemy.exc import SQLAlchemyError

    from shopstream.db.engine import describe_db_error
    from shopstream.errors import ConnectionFailed
    from shopstream.events import now_utc
    from shopstream.inspection.db_offsets import read_only_engine
    from shopstream.services.outbox import stats

    settings = settings_from(ctx)
    engine = read_only_engine(settings.database_url)
    if engine is None:
        raise UsageError(f"no database at {settings.masked()['DATABASE_URL']}")
    try:
        if not inspect_db(engine).has_table("service_outbox"):
            raise UsageError("the database has no outbox table (no 'shopstream serve' ran on it)")
        with engine.connect() as connection:
            found = stats(connection, now_utc(), sample)
    except SQLAlchemyError as exc:
        raise ConnectionFailed(f"cannot read the outbox: {describe_db_error(exc)}") from None
    finally:
        engine.dispose()
    data = {
        "pending": found.pending,
        "oldest_pending_age_s": found.oldest_pending_age_s,
        "sent": found.sent,
        "lag_sample": found.lag_sample,
        "lag_p50_s": found.lag_p50_s,
        "lag_p99_s": found.lag_p99_s,
        "lag_max_s": found.lag_max_s,
        "last_sent_at": found.last_sent_at.isoformat() if found.last_sent_at else None,
    }
    if fmt is OutputFormat.json:
        print_json(data)
        return
    from rich.table import Table

    table = Table("outbox", "value", title="services outbox (commit → Kafka acknowledged)")
    for name, value in data.items():
        shown = "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else value)
        table.add_row(name, str(shown))
    console.print(table)


# -- one order's timeline ----------------------------------------------------------------


@app.command("order")
def order_cmd(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Argument(help="The order id (the key of order-events).")],
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            min=1,
            help="Read at most the last N offsets of each partition (default: all of it).",
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """One order's timeline: its events across cart and order topics and their DLQs, in
    order, beside its database row; flags where they disagree."""
    timeline = order_timeline(settings_from(ctx), order_id, window=window, timeout=timeout)
    if fmt is OutputFormat.json:
        print_json(timeline.to_json())
        return
    for part in render.timeline_tables(timeline):
        console.print(part, highlight=False)
