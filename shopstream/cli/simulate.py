"""`shopstream simulate`: realistic shoppers, sent to Kafka and/or written as JSONL.

The events come from :class:`shopstream.simulation.simulator.Simulator` (deterministic under
``--seed``); this module only paces them (``--rate``), stops them (``--orders`` or
``--duration``), sends them (an :class:`~producers.base.EventProducer`) and/or writes
them (``--output``), with a progress bar and a closing summary.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import Progress, TaskID

from producers.base import EventProducer, ProducerOptions
from shopstream.cli.context import console, err_console, settings_from
from shopstream.cli.options import STDIN, TopicPrefix
from shopstream.cli.params import finite
from shopstream.cli.progress import PROGRESS_EVERY, RunSummary, print_run_summary, progress_bar
from shopstream.errors import ConnectionFailed, ShopstreamError, UsageError
from shopstream.events import DomainEvent
from shopstream.jsonl import dumps_event
from shopstream.simulation.simulator import SimulationConfig, Simulator, invalid_kind

DEFAULT_ORDERS = 100
MIN_WAIT_S = 0.001
INTERRUPTED_EXIT = 130


@dataclass(frozen=True)
class RunLimits:
    """When the run stops and how fast it goes (wall clock; the events do not change)."""

    orders: int | None
    duration_s: float | None
    rate: float
    """Events per second; 0 = as fast as possible."""


def paced(
    events: Iterable[DomainEvent],
    rate: float,
    wait: Callable[[float], object],
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[DomainEvent]:
    """``events`` at most ``rate`` per second (``wait`` sleeps, e.g. producer.poll)."""
    if rate <= 0:
        yield from events
        return
    started = clock()
    for index, event in enumerate(events):
        due = started + index / rate
        while (ahead := due - clock()) > MIN_WAIT_S:
            wait(ahead)  # may return early (producer.poll serves a report)
        yield event


def until(
    events: Iterable[DomainEvent],
    seconds: float | None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[DomainEvent]:
    """``events`` until ``seconds`` of wall-clock time have passed (None: all of them)."""
    if seconds is None:
        yield from events
        return
    deadline = clock() + seconds
    for event in events:
        if clock() >= deadline:
            return
        yield event


class _Tally:
    """Counts by type, invalid ones, and drives the progress bar."""

    def __init__(self, progress: Progress, limits: RunLimits, *, injects_invalid: bool) -> None:
        self.by_type: Counter[str] = Counter()
        self.invalid = 0
        self._injects_invalid = injects_invalid
        self._progress = progress
        self._limits = limits
        self._unreported = 0
        self._started = time.monotonic()
        total = limits.orders if limits.duration_s is None else limits.duration_s
        label = "orders" if limits.duration_s is None else "seconds"
        self._task: TaskID = progress.add_task(f"simulating ({label})", total=total, rate="")

    def count(self, event: DomainEvent) -> None:
        self.by_type[event.event_type] += 1
        if self._injects_invalid and invalid_kind(event) is not None:
            self.invalid += 1
        self._unreported += 1
        if self._unreported >= PROGRESS_EVERY:
            self.refresh()

    def refresh(self) -> None:
        elapsed = time.monotonic() - self._started
        events = self.by_type.total()
        rate = f"{events:,} events, {events / elapsed:,.0f}/s" if elapsed > 0 else ""
        if self._limits.duration_s is None:
            done = self.by_type["OrderCreated"]  # never injected as an invalid event
            self._progress.update(self._task, completed=done, rate=rate)
        else:
            self._progress.update(
                self._task, completed=min(elapsed, self._limits.duration_s), rate=rate
            )
        self._unreported = 0


def _limits(orders: int | None, duration: float | None, rate: float) -> RunLimits:
    if orders is not None and duration is not None:
        raise UsageError("use --orders or --duration, not both")
    if duration is None and orders is None:
        orders = DEFAULT_ORDERS
    return RunLimits(orders=orders, duration_s=duration, rate=rate)


def _open_output(stack: ExitStack, output: str | None) -> IO[str] | None:
    if output is None:
        return None
    if output == STDIN:
        return sys.stdout
    try:
        return stack.enter_context(Path(output).open("w", encoding="utf-8", newline="\n"))
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


def simulate(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(min=1, help="Shoppers active at once.")] = 50,
    orders: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"Stop after this many orders, once each order's life "
            f"cycle is over (default {DEFAULT_ORDERS}).",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            callback=finite,
            help="Stop after this many seconds of wall-clock time "
            "(orders still in progress stay so).",
        ),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(min=0, callback=finite, help="Events per second; 0 = as fast as possible."),
    ] = 0,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Random seed: the same seed gives the same events, ids included. "
            "Default: a random one (printed)."
        ),
    ] = None,
    invalid_rate: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            callback=finite,
            help="Extra invalid events per valid one (0-1), marked "
            "correlation_id 'invalid:<kind>', for the dead-letter path.",
        ),
    ] = 0.0,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE.jsonl",
            help="Write the events as JSON Lines (- for stdout). Then nothing is "
            "sent to Kafka unless --produce is given too.",
        ),
    ] = None,
    produce: Annotated[
        bool | None,
        typer.Option(
            "--produce/--no-produce", help="Send to Kafka (default: yes, unless --output is given)."
        ),
    ] = None,
    topic_prefix: TopicPrefix = None,
    via_api: Annotated[
        str | None,
        typer.Option(
            "--via-api",
            metavar="URL",
            help="Send the shoppers' actions as HTTP requests to 'shopstream serve' at URL "
            "(e.g. http://127.0.0.1:8000) instead of straight to Kafka.",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=1024, help="With --via-api: requests in flight at once.")
    ] = 16,
) -> None:
    """Realistic shoppers: carts, checkouts, orders, payments, cancellations.

    Customers fill carts from the product catalog (popular products more often),
    remove items, abandon carts or check out; orders are paid, confirmed, shipped or
    cancelled, following the order state machine. Prints a summary by event type and
    the throughput. Exit code 1 if any event could not be delivered.
    """
    limits = _limits(orders, duration, rate)
    chosen_seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    config = SimulationConfig(
        customers=customers, orders=limits.orders, seed=chosen_seed, invalid_rate=invalid_rate
    )
    if via_api is not None:
        if output is not None or produce:
            raise UsageError("--via-api sends to the service; leave out --output and --produce")
        _via_api(Simulator(config), limits, via_api, concurrency, chosen_seed)
        return
    send = output is None if produce is None else produce
    if not send and output is None:
        raise UsageError("--no-produce needs --output (otherwise the events go nowhere)")
    summary_console = err_console if output == STDIN else console
    with ExitStack() as stack:
        producer = None
        if send:  # checks the broker, registry and topics before the output file is created
            options = ProducerOptions(topic_prefix=topic_prefix)
            producer = stack.enter_context(EventProducer(settings_from(ctx), options))
        sink = _open_output(stack, output)
        started = time.perf_counter()
        tally, interrupted = _run(Simulator(config), limits, producer, sink)
        report = producer.close() if producer is not None else None
        elapsed = time.perf_counter() - started
    title = "simulated (interrupted)" if interrupted else "simulated"
    summary = RunSummary(title, elapsed, tally.by_type, report)
    if tally.invalid:
        summary.notes.append(f"invalid events injected: {tally.invalid:,}")
    summary.notes.append(f"seed: {chosen_seed} (the same --seed gives the same events)")
    print_run_summary(summary, summary_console)
    if report is not None:
        report.raise_if_failed()
    if interrupted:
        raise typer.Exit(INTERRUPTED_EXIT)


def _via_api(
    simulator: Simulator, limits: RunLimits, url: str, concurrency: int, seed: int
) -> None:
    """Drive ``shopstream serve`` at ``url``; exit 1 if any request went wrong."""
    import httpx

    from shopstream.services.api_client import ApiDriver

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--via-api needs an http:// or https:// URL, got {url!r}")
    try:
        httpx.get(f"{url.rstrip('/')}/readyz", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise ConnectionFailed(f"the service at {url} is not ready: {exc}") from None
    events = paced(until(simulator.events(), limits.duration_s), limits.rate, time.sleep)
    report = ApiDriver(url, concurrency, seed=seed).run(events)
    statuses = ", ".join(
        f"{count:,} x {status}" for status, count in sorted(report.by_status.items())
    )
    rate = len(report.outcomes) / report.seconds if report.seconds else 0.0
    console.print(
        f"sent {len(report.outcomes):,} requests to {url} in {report.seconds:.1f} s "
        f"({rate:,.0f}/s): {statuses}; retried {report.retried:,}"
    )
    console.print(f"seed: {seed} (the same --seed gives the same requests and keys)")
    if report.unexpected:
        first = report.unexpected[0]
        raise ShopstreamError(
            f"{len(report.unexpected)} requests went wrong, e.g. {first.call.method} "
            f"{first.call.path} -> {first.status or 'no answer'}"
        )


def _run(
    simulator: Simulator, limits: RunLimits, producer: EventProducer | None, sink: IO[str] | None
) -> tuple[_Tally, bool]:
    """Emit every event until a limit or Ctrl-C; returns the tally and whether interrupted."""
    wait: Callable[[float], object] = time.sleep if producer is None else producer.poll
    events = paced(until(simulator.events(), limits.duration_s), limits.rate, wait)
    interrupted = False
    with progress_bar() as progress:
        tally = _Tally(progress, limits, injects_invalid=simulator.config.invalid_rate > 0)
        try:
            for event in events:
                _emit(event, producer, sink)
                tally.count(event)
        except KeyboardInterrupt:
            interrupted = True
        tally.refresh()
    if sink is not None:
        sink.flush()
    return tally, interrupted


def _emit(event: DomainEvent, producer: EventProducer | None, sink: IO[str] | None) -> None:
    if sink is not None:
        sink.write(dumps_event(event))
        sink.write("\n")
    if producer is not None:
        producer.send(event)
