"""How inspection results look: Rich tables for people, JSON for machines.

Messages are streamed (one line each, flushed) so ``tail`` shows an event as soon as
it arrives and ``peek`` never holds a whole topic in memory; ``--format json`` streams
a JSON array, ``jsonl`` one JSON object per line.

Everything shown comes from outside (keys, ids, values, headers), so it goes through
``shopstream.terminal``: table cells are Rich ``Text`` (never read as markup), lines
and JSON have control characters escaped visibly.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, TextIO

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from shopstream.inspection.consumer_groups import GroupInfo, GroupLag
from shopstream.inspection.decode import InspectedMessage, format_millis
from shopstream.inspection.dlq_reader import DlqReport
from shopstream.inspection.timeline import Timeline
from shopstream.inspection.topic_info import TopicDetail, TopicSummary
from shopstream.registry.lookup import SubjectInfo
from shopstream.terminal import cell, json_safe, printable

EVENT_PREVIEW_CHARS = 160


def compact_json(data: Any) -> str:
    return json_safe(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def _row(table: Table, *values: object) -> None:
    """Add a row whose cells show ``values`` literally."""
    table.add_row(*(value if isinstance(value, Text) else cell(value) for value in values))


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


# -- message streams -------------------------------------------------------------


class MessageWriter(Protocol):
    """``begin`` once the read has started (topic found), ``write`` each, ``end`` once.

    ``end`` without ``begin`` still leaves complete output (``[]`` for JSON).
    """

    def begin(self) -> None: ...
    def write(self, message: InspectedMessage) -> None: ...
    def end(self) -> None: ...


class JsonLinesWriter:
    """One JSON object per line, flushed after each."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def begin(self) -> None:
        """Nothing before the first line."""

    def write(self, message: InspectedMessage) -> None:
        self._out.write(compact_json(message.to_json()) + "\n")
        self._out.flush()

    def end(self) -> None:
        self._out.flush()


class JsonArrayWriter:
    """A JSON array written element by element (valid once ``end`` ran)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._count = 0
        self._begun = False

    def begin(self) -> None:
        if not self._begun:
            self._begun = True
            self._out.write("[")

    def write(self, message: InspectedMessage) -> None:
        separator = ",\n" if self._count else "\n"
        body = json_safe(json.dumps(message.to_json(), indent=2, ensure_ascii=False))
        self._out.write(separator + _indent(body))
        self._out.flush()
        self._count += 1

    def end(self) -> None:
        self.begin()
        self._out.write("\n]\n" if self._count else "]\n")
        self._out.flush()


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


class TableLinesWriter:
    """Aligned columns, one line per message, for people watching a terminal."""

    HEADER = (
        f"{'PART':>4} {'OFFSET':>8}  {'TIMESTAMP':<24}  {'KEY':<24}  {'TYPE':<16}  SCHEMA  EVENT"
    )

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._begun = False

    def begin(self) -> None:
        if not self._begun:
            self._begun = True
            self._out.write(self.HEADER + "\n")
            self._out.flush()

    def write(self, message: InspectedMessage) -> None:
        self._out.write(printable(message_line(message)) + "\n")
        self._out.flush()

    def end(self) -> None:
        self.begin()
        self._out.flush()


def message_line(message: InspectedMessage) -> str:
    schema = "-"
    if message.schema_id is not None:
        schema = f"{message.subject or '?'} v{_dash(message.version)} (id {message.schema_id})"
    if message.problem is not None:
        body = (
            f"UNDECODABLE {message.problem.reason}: {message.problem.detail} raw={message.raw_hex}"
        )
    else:
        body = _preview(compact_json(message.event))
    return (
        f"{message.partition:>4} {message.offset:>8}  {_dash(message.timestamp):<24}  "
        f"{_dash(message.key):<24}  {_dash(message.event_type):<16}  {schema}  {body}"
    )


def _preview(text: str) -> str:
    return text if len(text) <= EVENT_PREVIEW_CHARS else text[: EVENT_PREVIEW_CHARS - 1] + "…"


def message_writer(fmt: str, out: TextIO) -> MessageWriter:
    if fmt == "json":
        return JsonArrayWriter(out)
    if fmt == "jsonl":
        return JsonLinesWriter(out)
    return TableLinesWriter(out)


# -- tables -----------------------------------------------------------------------


def topics_table(topics: list[TopicSummary]) -> Table:
    table = Table("topic", "partitions", "messages")
    for topic in topics:
        _row(table, topic.name, str(topic.partitions), str(topic.messages))
    return table


def topic_tables(detail: TopicDetail) -> list[Table]:
    parts = Table(
        "partition",
        "leader",
        "replicas",
        "isr",
        "start",
        "end",
        "messages",
        "first timestamp",
        "last timestamp",
        title=cell(f"{detail.name} ({detail.messages} messages)"),
    )
    for part in detail.partitions:
        _row(
            parts,
            str(part.partition),
            str(part.leader),
            _ids(part.replicas),
            _ids(part.isrs),
            str(part.start),
            str(part.end),
            str(part.messages),
            _dash(format_millis(part.first_timestamp_ms)),
            _dash(format_millis(part.last_timestamp_ms)),
        )
    configs = Table("config", "value", "source", title="non-default configs")
    for config in detail.configs:
        value = "(sensitive)" if config.sensitive else _dash(config.value)
        _row(configs, config.name, value, config.source)
    return [parts, configs]


def _ids(ids: tuple[int, ...]) -> str:
    return ",".join(str(i) for i in ids)


def groups_table(groups: list[GroupInfo]) -> Table:
    table = Table("group", "state", "type", "members", "member (client id @ host: partitions)")
    for group in groups:
        members = [
            f"{m.client_id} @ {m.host}: {', '.join(f'{t}:{p}' for t, p in m.assignment) or '-'}"
            for m in group.members
        ]
        _row(
            table,
            group.group_id,
            group.state,
            group.group_type,
            str(len(group.members)),
            Text("\n".join(printable(member) for member in members) or "-"),
        )
    return table


def lag_table(lag: GroupLag) -> Table:
    columns = ["topic", "partition", "committed", "end", "lag"]
    if lag.with_db:
        columns += ["db offset", "agrees"]
    table = Table(*columns, title=cell(f"{lag.group_id} ({lag.state}, total lag {lag.total_lag})"))
    for part in lag.partitions:
        row = [
            part.topic,
            str(part.partition),
            _dash(part.committed),
            str(part.end),
            _dash(part.lag),
        ]
        if lag.with_db:
            row += [_dash(part.db_offset), "yes" if part.agrees() else "NO"]
        _row(table, *row)
    return table


def subjects_table(subjects: list[SubjectInfo]) -> Table:
    table = Table("subject", "versions", "ids", "compatibility")
    for info in subjects:
        _row(
            table,
            info.subject,
            ",".join(str(v.version) for v in info.versions),
            ",".join(str(v.schema_id) for v in info.versions),
            _dash(info.compatibility),
        )
    return table


def dlq_tables(report: DlqReport) -> list[RenderableType]:
    """A heading, the count per reason, then one table of dead letters per reason."""
    summary = Table("reason", "count")
    groups = report.by_reason()
    for reason, letters in groups:
        _row(summary, reason, str(len(letters)))
    tables: list[RenderableType] = [
        cell(f"{report.topic}: {len(report.letters)} dead letters"),
        summary,
    ]
    for reason, letters in groups:
        detail = Table(
            "offset",
            "group",
            "original (topic:partition@offset)",
            "dead-lettered at",
            "key",
            "type",
            "error",
            title=cell(f"{reason} ({len(letters)})"),
        )
        for letter in letters:
            original = (
                f"{_dash(letter.original_topic)}:{_dash(letter.original_partition)}"
                f"@{_dash(letter.original_offset)}"
            )
            _row(
                detail,
                f"{letter.message.partition}:{letter.message.offset}",
                _dash(letter.group),
                original,
                _dash(letter.dead_lettered_at),
                _dash(letter.message.key),
                _dash(letter.message.event_type),
                _dash(letter.error),
            )
        tables.append(detail)
    return tables


def timeline_tables(timeline: Timeline) -> list[RenderableType]:
    """The order's events and dead letters, its database row, and the findings."""
    heading = f"order {timeline.order_id}" + (
        f" (cart {timeline.cart_id})" if timeline.cart_id else ""
    )
    events = Table(title=heading, title_justify="left")
    for name in ("time", "where", "type"):
        events.add_column(name)
    events.add_column("event id", min_width=36, overflow="fold")
    events.add_column("groups")
    events.add_column("note")
    for entry in timeline.entries:
        message = entry.message
        groups = ", ".join(f"{group}: {outcome}" for group, outcome in entry.groups.items())
        note = ""
        if entry.dead_letter is not None:
            letter = entry.dead_letter
            note = f"{letter.reason} by {_dash(letter.group)}: {_dash(letter.error)}"
        elif message.problem is not None:
            note = f"undecodable: {message.problem.reason}"
        events.add_row(
            _dash(message.timestamp),
            entry.coordinates,
            ("DLQ " if entry.kind == "dead-letter" else "") + _dash(message.event_type),
            _dash(entry.event_id),
            groups or "-",
            note or "-",
        )
    out: list[RenderableType] = [events]
    database = timeline.database
    row = Table("column", "value", title="orders row", title_justify="left")
    if database.note is not None:
        row.add_row("-", database.note)
    elif database.order is None:
        row.add_row("-", "no row in orders")
    else:
        for name, value in database.order.items():
            row.add_row(name, _dash(value))
    change = timeline.last_change
    if change is not None:
        where = (
            f"{change.topic}:{change.partition}@{change.offset}"
            if change.offset is not None
            else "not found in the topic"
        )
        row.add_row("last changed by", f"{change.event_type} {change.event_id} at {where}")
    for (group, topic, partition), offset in sorted(database.offsets.items()):
        row.add_row(f"{group} offset", f"{topic}:{partition} next {offset}")
    out.append(row)
    if timeline.findings:
        out.append("[bold red]disagreements:[/]")
        out.extend(f"  [red]•[/] {finding}" for finding in timeline.findings)
    elif database.note is None:
        out.append("[green]topics and database agree[/]")
    reads = ", ".join(
        f"{read.topic}:{read.partition} [{read.start}, {read.end})" for read in timeline.reads
    )
    out.append(f"[dim]read {reads} in {timeline.seconds:.3f}s[/]")
    return out
