"""Progress bars and closing summaries of the many-events commands (``produce file``,
``simulate``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from producers.base import DeliveryReport, EventProducer
from shopstream.cli.context import console, err_console
from shopstream.events import DomainEvent

PROGRESS_EVERY = 512
"""Events between two progress-bar updates (updating per event costs throughput)."""


def progress_bar() -> Progress:
    """A Rich progress bar on stderr (silent when stderr is not a terminal).

    Tasks need a ``rate`` field (text shown after the counts).
    """
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )


@dataclass
class RunSummary:
    """What a many-events command did, for the closing table."""

    title: str
    elapsed_s: float
    by_type: Mapping[str, int]
    report: DeliveryReport | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(self.by_type.values())

    @property
    def throughput(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


def by_type_table(by_type: Mapping[str, int]) -> Table:
    table = Table("event type", "events")
    for event_type, count in sorted(by_type.items()):
        table.add_row(event_type, f"{count:,}")
    table.add_row("total", f"{sum(by_type.values()):,}", style="bold")
    return table


def print_run_summary(summary: RunSummary, out: Console = console) -> None:
    """Events by type, deliveries, notes, elapsed time and throughput."""
    out.print(summary.title, highlight=False, markup=False)
    out.print(by_type_table(summary.by_type))
    report = summary.report
    if report is not None:
        out.print(f"delivered: {report.delivered:,} of {report.sent:,}", highlight=False)
        if report.failures:
            out.print(f"failed: {report.describe()}", highlight=False, markup=False)
    for note in summary.notes:
        out.print(note, highlight=False, markup=False)
    out.print(
        f"elapsed: {summary.elapsed_s:.2f} s, throughput: {summary.throughput:,.0f} events/s",
        highlight=False,
    )


def send_events(
    producer: EventProducer, events: Iterable[DomainEvent], progress: Progress, total: int
) -> Counter[str]:
    """Send ``events`` with a progress bar; returns the counts by type."""
    task = progress.add_task("sending", total=total, rate="")
    sent: Counter[str] = Counter()
    pending = 0
    started = time.perf_counter()
    for event in events:
        producer.send(event)
        sent[event.event_type] += 1
        pending += 1
        if pending == PROGRESS_EVERY:
            progress.update(task, advance=pending, rate=_rate(sent.total(), started))
            pending = 0
    progress.update(task, advance=pending, rate=_rate(sent.total(), started))
    return sent


def _rate(count: int, started: float) -> str:
    elapsed = time.perf_counter() - started
    return f"{count / elapsed:,.0f}/s" if elapsed > 0 else ""
