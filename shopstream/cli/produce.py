"""`shopstream produce cart|order ...` (one event from flags) and `produce file`.

One-event commands build and validate the event from the flags (``event_id`` and
``occurred_at`` are generated unless given), check the broker, the registry and the
topic, send it and print where it landed: topic, partition, offset.

``produce file`` reads JSON Lines (one event per line with its ``type``, the format
of ``event.to_json()``; ``-`` reads stdin). It is all-or-nothing by default: every
line is validated before anything is sent, and if any line is invalid every bad line
is listed (``FILE:LINE: reason``), nothing is sent and the exit code is 2.
``--skip-invalid`` sends the valid lines and lists the skipped ones; ``--dry-run``
only validates. See docs/producing.md.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Annotated

import typer

from producers.base import EventProducer, ProducerOptions, SentEvent
from producers.cart import CartProducer
from producers.order import OrderProducer
from shopstream.cli.context import console, settings_from
from shopstream.cli.options import (
    STDIN,
    CartId,
    Currency,
    CustomerId,
    OneEventOptions,
    OrderId,
    Quantity,
    Sku,
    TopicPrefix,
    one_event_command,
    parse_line_flag,
    parse_money,
)
from shopstream.cli.output import print_json_line
from shopstream.cli.progress import (
    RunSummary,
    by_type_table,
    print_run_summary,
    progress_bar,
    send_events,
)
from shopstream.errors import ShopstreamError, UsageError
from shopstream.events import DomainEvent, new_event_id
from shopstream.jsonl import Validation, valid_events, validate_lines

SPOOL_IN_MEMORY_BYTES = 64 * 1024 * 1024

app = typer.Typer(
    help="Send events: one from flags (cart, order) or many from a JSON Lines file.",
    no_args_is_help=True,
)
cart_app = typer.Typer(
    help="Send one cart event (topic cart-events, key cart_id).", no_args_is_help=True
)
order_app = typer.Typer(
    help="Send one order event (topic order-events, key order_id).", no_args_is_help=True
)
app.add_typer(cart_app, name="cart")
app.add_typer(order_app, name="order")

# -- sending one event ------------------------------------------------------------


class _Held:
    """An event sink that keeps the one event a typed producer built, to send it later."""

    def __init__(self) -> None:
        self.event: DomainEvent | None = None

    def send(self, event: DomainEvent) -> None:
        self.event = event


Build = Callable[[CartProducer, OrderProducer], DomainEvent]


def send_one(ctx: typer.Context, build: Build, options: OneEventOptions) -> SentEvent:
    """Build the event with the typed producers (validated before anything connects),
    check the stack, send it, wait for its acknowledgement, print where it is."""
    held = _Held()
    event = build(CartProducer(held), OrderProducer(held))
    producer_options = ProducerOptions(topic_prefix=options.topic_prefix, track_offsets=True)
    with EventProducer(settings_from(ctx), producer_options) as producer:
        producer.send(event)
        sent = producer.wait_for(event)
    if options.as_json:
        print_json_line(
            {
                "topic": sent.topic,
                "partition": sent.partition,
                "offset": sent.offset,
                "key": sent.key,
                "event_type": sent.event_type,
                "event_id": sent.event_id,
                "event": event.to_json(),
            }
        )
    else:
        console.print(
            f"{sent.event_type} {sent.event_id} -> {sent.topic} partition {sent.partition} "
            f"offset {sent.offset} (key {sent.key})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return sent


# -- cart commands -----------------------------------------------------------------


@cart_app.command("add-item")
@one_event_command
def cart_add_item(
    ctx: typer.Context,
    customer_id: CustomerId,
    sku: Sku,
    unit_price: Annotated[str, typer.Option("--unit-price", help="Price of one unit: 12.50.")],
    cart_id: Annotated[
        str | None, typer.Option("--cart-id", help="The cart. Default: a new cart id.")
    ] = None,
    quantity: Quantity = 1,
    currency: Currency = "EUR",
    *,
    options: OneEventOptions,
) -> None:
    """CartItemAdded: put QUANTITY units of SKU in a cart."""
    send_one(
        ctx,
        lambda cart, _: cart.add_item(
            cart_id=cart_id or new_event_id(),
            customer_id=customer_id,
            sku=sku,
            quantity=quantity,
            unit_price=parse_money("--unit-price", unit_price),
            currency=currency,
            **options.meta(),
        ),
        options,
    )


@cart_app.command("remove-item")
@one_event_command
def cart_remove_item(
    ctx: typer.Context,
    cart_id: CartId,
    customer_id: CustomerId,
    sku: Sku,
    quantity: Quantity = 1,
    *,
    options: OneEventOptions,
) -> None:
    """CartItemRemoved: take QUANTITY units of SKU out of a cart."""
    send_one(
        ctx,
        lambda cart, _: cart.remove_item(
            cart_id=cart_id, customer_id=customer_id, sku=sku, quantity=quantity, **options.meta()
        ),
        options,
    )


@cart_app.command("checkout")
@one_event_command
def cart_checkout(
    ctx: typer.Context,
    cart_id: CartId,
    customer_id: CustomerId,
    order_id: Annotated[
        str | None, typer.Option("--order-id", help="The order it becomes. Default: a new id.")
    ] = None,
    *,
    options: OneEventOptions,
) -> None:
    """CartCheckedOut: the cart becomes an order."""
    send_one(
        ctx,
        lambda cart, _: cart.checkout(
            cart_id=cart_id, customer_id=customer_id, order_id=order_id, **options.meta()
        ),
        options,
    )


# -- order commands -------------------------------------------------------------------


@order_app.command("create")
@one_event_command
def order_create(
    ctx: typer.Context,
    customer_id: CustomerId,
    line: Annotated[
        list[str],
        typer.Option("--line", help="SKU:QTY:PRICE, e.g. BOOK-0001:2:12.50 (repeat it)."),
    ],
    order_id: Annotated[
        str | None, typer.Option("--order-id", help="The order. Default: a new id.")
    ] = None,
    total: Annotated[
        str | None,
        typer.Option("--total", help="Order total. Default: the sum of the lines."),
    ] = None,
    cart_id: Annotated[str | None, typer.Option("--cart-id", help="Cart it came from.")] = None,
    coupon_code: Annotated[str | None, typer.Option("--coupon-code")] = None,
    currency: Currency = "EUR",
    *,
    options: OneEventOptions,
) -> None:
    """OrderCreated: a new order awaiting payment (PENDING_PAYMENT)."""
    lines = tuple(parse_line_flag(text) for text in line)
    send_one(
        ctx,
        lambda _, order: order.create(
            order_id=order_id,
            customer_id=customer_id,
            lines=lines,
            total=None if total is None else parse_money("--total", total),
            currency=currency,
            cart_id=cart_id,
            coupon_code=coupon_code,
            **options.meta(),
        ),
        options,
    )


@order_app.command("pay")
@one_event_command
def order_pay(
    ctx: typer.Context,
    order_id: OrderId,
    amount: Annotated[str, typer.Option("--amount", help="Amount paid (the order total).")],
    payment_id: Annotated[
        str | None, typer.Option("--payment-id", help="Default: a new id.")
    ] = None,
    currency: Currency = "EUR",
    *,
    options: OneEventOptions,
) -> None:
    """OrderPaid: PENDING_PAYMENT -> PAID."""
    send_one(
        ctx,
        lambda _, order: order.pay(
            order_id=order_id,
            payment_id=payment_id,
            amount=parse_money("--amount", amount),
            currency=currency,
            **options.meta(),
        ),
        options,
    )


@order_app.command("confirm")
@one_event_command
def order_confirm(
    ctx: typer.Context,
    order_id: OrderId,
    *,
    options: OneEventOptions,
) -> None:
    """OrderConfirmed: PAID -> CONFIRMED."""
    send_one(ctx, lambda _, order: order.confirm(order_id=order_id, **options.meta()), options)


@order_app.command("ship")
@one_event_command
def order_ship(
    ctx: typer.Context,
    order_id: OrderId,
    carrier: Annotated[str, typer.Option("--carrier", help="e.g. DHL.")],
    tracking_number: Annotated[str, typer.Option("--tracking-number")],
    *,
    options: OneEventOptions,
) -> None:
    """OrderShipped: CONFIRMED -> SHIPPED."""
    send_one(
        ctx,
        lambda _, order: order.ship(
            order_id=order_id,
            carrier=carrier,
            tracking_number=tracking_number,
            **options.meta(),
        ),
        options,
    )


@order_app.command("cancel")
@one_event_command
def order_cancel(
    ctx: typer.Context,
    order_id: OrderId,
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. customer-request.")],
    *,
    options: OneEventOptions,
) -> None:
    """OrderCancelled: PENDING_PAYMENT, PAID or CONFIRMED -> CANCELLED."""
    send_one(
        ctx,
        lambda _, order: order.cancel(order_id=order_id, reason=reason, **options.meta()),
        options,
    )


# -- produce file ---------------------------------------------------------------------


@contextmanager
def open_source(path: str) -> Iterator[IO[bytes]]:
    """The file (or stdin, spooled so it can be read twice), opened in binary."""
    if path == STDIN:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.seek(0)
            yield spool
        return
    try:
        source = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with source:
        yield source


def report_invalid(name: str, validation: Validation, *, skip_invalid: bool) -> None:
    """List every bad line on stderr; unless skipping, stop (nothing is sent)."""
    prefix = "skipped: " if skip_invalid else ""
    for error in validation.errors:
        sys.stderr.write(f"{name}:{error.line}: {prefix}{error.reason}\n")
    sys.stderr.flush()
    if validation.errors and not skip_invalid:
        bad = len(validation.errors)
        raise UsageError(
            f"{bad} invalid line{'s' if bad != 1 else ''} in {name} (first: line "
            f"{validation.errors[0].line}); nothing was sent. Fix them, or pass --skip-invalid "
            f"to send the {validation.valid} valid events"
        )


@app.command("file")
def produce_file(
    ctx: typer.Context,
    path: Annotated[
        str, typer.Argument(metavar="EVENTS.jsonl", help="JSON Lines file, or - for stdin.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate every line, send nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Send the valid lines, list the skipped ones."),
    ] = False,
    topic_prefix: TopicPrefix = None,
) -> None:
    """Send many events from a JSON Lines file: one event per line with its "type".

    The format is that of `shopstream simulate --output`: {"type": "OrderPaid",
    "order_id": ..., ...}; event_id and occurred_at are generated when left out.

    All or nothing: every line is validated before anything is sent. If any line is
    invalid, each bad line is listed as FILE:LINE: reason, nothing is sent, and the
    exit code is 2. With --skip-invalid the valid lines are sent and the invalid ones
    listed as skipped. Exit code 1 if any event could not be delivered.
    """
    name = "<stdin>" if path == STDIN else path
    with open_source(path) as source:
        validation = validate_lines(source)
        report_invalid(name, validation, skip_invalid=skip_invalid)
        if dry_run:
            _print_dry_run(name, validation)
            return
        if not validation.valid:
            console.print(f"{name}: no events to send", highlight=False, markup=False)
            return
        source.seek(0)
        summary = _send_file(ctx, source, validation, topic_prefix)
    summary.notes.extend(_skipped_note(validation))
    print_run_summary(summary)
    if summary.events != validation.valid:
        raise ShopstreamError(
            f"{name} changed while it was sent: {validation.valid} valid events checked, "
            f"{summary.events} sent"
        )
    if summary.report is not None:
        summary.report.raise_if_failed()


def _send_file(
    ctx: typer.Context, source: IO[bytes], validation: Validation, topic_prefix: str | None
) -> RunSummary:
    options = ProducerOptions(topic_prefix=topic_prefix)
    with EventProducer(settings_from(ctx), options) as producer:
        started = time.perf_counter()
        with progress_bar() as progress:
            sent = send_events(producer, valid_events(source), progress, validation.valid)
        report = producer.close()
        elapsed = time.perf_counter() - started
    return RunSummary("sent", elapsed, sent, report)


def _skipped_note(validation: Validation) -> list[str]:
    if not validation.errors:
        return []
    return [f"skipped: {len(validation.errors)} invalid lines (listed above)"]


def _print_dry_run(name: str, validation: Validation) -> None:
    console.print(f"{name}: valid events (dry run, nothing sent)", highlight=False, markup=False)
    console.print(by_type_table(validation.by_type))
    for note in _skipped_note(validation):
        console.print(note, highlight=False, markup=False)
