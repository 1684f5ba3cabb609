"""Options shared by the CLI's commands, and the parsing of their values.

The one-event ``produce`` commands take the event's own fields plus
:class:`OneEventOptions`; ``produce file`` and ``simulate`` share ``--topic-prefix``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer

from producers.cart import EventMeta, event_meta
from shopstream.errors import UsageError
from shopstream.events import OrderLine

STDIN = "-"
"""The file name that means standard input (or output)."""

TopicPrefix = Annotated[
    str | None,
    typer.Option(
        "--topic-prefix",
        help="Send to <prefix>cart-events / <prefix>order-events (schemas under "
        "<prefix><topic>-<record>): an isolated set of topics, e.g. for tests. "
        "Default: SHOPSTREAM_TOPIC_PREFIX (none).",
    ),
]
EventId = Annotated[
    str | None, typer.Option("--event-id", help="Event id (a UUID). Default: a new one.")
]
OccurredAt = Annotated[
    str | None,
    typer.Option("--occurred-at", help="ISO-8601 time (naive means UTC). Default: now."),
]
CorrelationId = Annotated[
    str | None, typer.Option("--correlation-id", help="Ties the events of one action.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
CartId = Annotated[str, typer.Option("--cart-id", help="The cart (the message key).")]
CustomerId = Annotated[str, typer.Option("--customer-id", help="The customer.")]
Sku = Annotated[str, typer.Option("--sku", help="Product SKU.")]
Quantity = Annotated[int, typer.Option("--quantity", help="Units (positive).")]
Currency = Annotated[str, typer.Option("--currency", help="3-letter currency code.")]
OrderId = Annotated[str, typer.Option("--order-id", help="The order (the message key).")]


@dataclass(frozen=True)
class OneEventOptions:
    """What every one-event command takes besides the event's own fields."""

    event_id: str | None = None
    occurred_at: str | None = None
    correlation_id: str | None = None
    topic_prefix: str | None = None
    as_json: bool = False

    def meta(self) -> EventMeta:
        """event_id / occurred_at / correlation_id to pass to an event, if given."""
        occurred_at = None
        if self.occurred_at is not None:
            occurred_at = parse_time("--occurred-at", self.occurred_at)
        return event_meta(self.event_id, occurred_at, self.correlation_id)


_SHARED_OPTIONS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
    for name, kind, default in (
        ("event_id", EventId, None),
        ("occurred_at", OccurredAt, None),
        ("correlation_id", CorrelationId, None),
        ("topic_prefix", TopicPrefix, None),
        ("as_json", AsJson, False),
    )
]


def one_event_command(command: Callable[..., None]) -> Callable[..., None]:
    """Give a one-event command the options every one of them takes (``--event-id``,
    ``--occurred-at``, ``--correlation-id``, ``--topic-prefix``, ``--json``), after its
    own; the command receives them as ``options: OneEventOptions``."""
    signature = inspect.signature(command, eval_str=True)
    own = [param for name, param in signature.parameters.items() if name != "options"]

    @functools.wraps(command)
    def with_options(
        *args: Any,
        event_id: str | None = None,
        occurred_at: str | None = None,
        correlation_id: str | None = None,
        topic_prefix: str | None = None,
        as_json: bool = False,
        **kwargs: Any,
    ) -> None:
        options = OneEventOptions(event_id, occurred_at, correlation_id, topic_prefix, as_json)
        command(*args, options=options, **kwargs)

    with_options.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*own, *_SHARED_OPTIONS]
    )
    return with_options


def parse_money(flag: str, text: str) -> Decimal:
    """A decimal amount like ``12.50``; UsageError naming the flag otherwise."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise UsageError(f"{flag}: not an amount: {text!r} (e.g. 12.50)") from None
    if not value.is_finite():
        raise UsageError(f"{flag}: not an amount: {text!r} (e.g. 12.50)")
    return value


def parse_time(flag: str, text: str) -> datetime:
    """An ISO-8601 time (``Z`` allowed; naive means UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: not an ISO-8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_line_flag(text: str) -> OrderLine:
    """``SKU:QTY:PRICE`` (the SKU may itself contain colons)."""
    sku, sep1, rest = text.rpartition(":")
    sku, sep2, quantity = sku.rpartition(":")
    if not (sep1 and sep2 and sku):
        raise UsageError(f"--line {text!r}: expected SKU:QTY:PRICE, e.g. BOOK-0001:2:12.50")
    try:
        units = int(quantity)
    except ValueError:
        raise UsageError(f"--line {text!r}: quantity {quantity!r} is not a whole number") from None
    return OrderLine(sku=sku, quantity=units, unit_price=parse_money(f"--line {text!r}", rest))
