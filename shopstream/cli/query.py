"""`shopstream query ...`: answers from the read models, as Rich tables or JSON.

``--format json`` prints one JSON document (decimals as strings, times ISO-8601 UTC,
durations in seconds).
Cart states are computed at a moment: ``--as-of`` (ISO-8601, or ``now``), by default
the latest cart activity in the database, so a simulated run (whose event times are
not today's) is answerable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from shopstream.cli.context import console, settings_from
from shopstream.cli.output import FormatOpt, OutputFormat, print_json
from shopstream.db import read_queries
from shopstream.db.engine import check_database, describe_db_error, make_engine
from shopstream.errors import ShopstreamError, UsageError
from shopstream.terminal import cell

app = typer.Typer(
    help="Ask the read models: orders, carts, sales, customers.", no_args_is_help=True
)

T = TypeVar("T")


class CartStatusOpt(StrEnum):
    ACTIVE = "ACTIVE"
    CHECKED_OUT = "CHECKED_OUT"
    ABANDONED = "ABANDONED"


SQL_MAX_INT = 2**63 - 1
"""The largest LIMIT SQLite and PostgreSQL take (a signed 64-bit integer)."""


def _row_count(value: int) -> int:
    """Option callback: a row count the database can take."""
    if value > SQL_MAX_INT:
        raise typer.BadParameter(f"{value} is larger than {SQL_MAX_INT}.")
    return value


LimitOpt = Annotated[
    int,
    typer.Option("--limit", "-n", min=1, callback=_row_count, help="At most this many rows."),
]
TopOpt = Annotated[
    int, typer.Option("--top", "-n", min=1, callback=_row_count, help="How many to show.")
]
AbandonedOpt = Annotated[
    str,
    typer.Option(
        "--abandoned-after",
        help="An ACTIVE cart idle this long is ABANDONED (e.g. 30m, 2h, 1d, 1h30m).",
    ),
]
AsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="The moment carts are judged at: ISO-8601 or 'now' "
        "(default: the latest cart activity seen).",
    ),
]

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


# -- commands ------------------------------------------------------------------------------


@app.command("orders")
def orders_cmd(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="e.g. PAID, CANCELLED.")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="A customer id.")] = None,
    limit: LimitOpt = 20,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Latest orders (order-state)."""
    with _connection(ctx) as connection:
        rows = read_queries.list_orders(
            connection, status=status, customer_id=customer, limit=limit
        )
    _emit(fmt, rows, lambda: _orders_table(rows))


@app.command("order")
def order_cmd(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Argument(help="The order id.")],
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """One order: its lines and status history."""
    with _connection(ctx) as connection:
        detail = read_queries.get_order(connection, order_id)
    if detail is None:
        raise ShopstreamError(f"no order {order_id!r}")
    if fmt is OutputFormat.json:
        print_json(detail)
        return
    _print_order(detail)


@app.command("carts")
def carts_cmd(
    ctx: typer.Context,
    status: Annotated[
        CartStatusOpt | None,
        typer.Option("--status", help="ACTIVE (not abandoned), ABANDONED or CHECKED_OUT."),
    ] = None,
    abandoned_after: AbandonedOpt = "30m",
    as_of: AsOfOpt = None,
    limit: LimitOpt = 20,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Carts by latest activity (cart-projection)."""
    threshold = parse_duration(abandoned_after)
    given = parse_moment(as_of) if as_of else None
    with _connection(ctx) as connection:
        moment = given or read_queries.latest_cart_activity(connection) or datetime.now(UTC)
        state = read_queries.CartState(status.value) if status else None
        rows = read_queries.list_carts(
            connection, state=state, as_of=moment, abandoned_after=threshold, limit=limit
        )
    if fmt is OutputFormat.json:
        print_json({"as_of": moment, "abandoned_after": threshold, "carts": rows})
        return
    console.print(f"carts as of {_text(moment)} (abandoned after {_text(threshold)} idle)")
    console.print(_carts_table(rows))


@app.command("sales")
def sales_cmd(ctx: typer.Context, top: TopOpt = 10, fmt: FormatOpt = OutputFormat.table) -> None:
    """Best-selling products, net of cancellations (sales-projection)."""
    with _connection(ctx) as connection:
        rows = read_queries.top_products(connection, top=top)
    _emit(fmt, rows, lambda: _products_table(rows))


@app.command("customers")
def customers_cmd(
    ctx: typer.Context, top: TopOpt = 10, fmt: FormatOpt = OutputFormat.table
) -> None:
    """Customers by amount spent, net of refunds (sales-projection)."""
    with _connection(ctx) as connection:
        rows = read_queries.top_customers(connection, top=top)
    _emit(fmt, rows, lambda: customers_table(rows))


@app.command("summary")
def summary_cmd(
    ctx: typer.Context,
    top: TopOpt = 5,
    abandoned_after: AbandonedOpt = "30m",
    as_of: AsOfOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Orders by status, revenue, top products and abandoned carts."""
    threshold = parse_duration(abandoned_after)
    moment = parse_moment(as_of) if as_of else None
    with _connection(ctx) as connection:
        result = read_queries.summary(connection, as_of=moment, abandoned_after=threshold, top=top)
    if fmt is OutputFormat.json:
        print_json(result)
        return
    print_summary(result)


# -- input ---------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``90s``, ``1h30m`` → timedelta (UsageError otherwise)."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise UsageError(f"bad duration {text!r}: use e.g. 30m, 2h, 1d or 1h30m")
    try:
        return sum((timedelta(**{_UNITS[unit]: int(n)}) for n, unit in parts), timedelta())
    except (OverflowError, ValueError):  # beyond timedelta, or more digits than int() takes
        raise UsageError(f"bad duration {text!r}: too long") from None


def parse_moment(text: str) -> datetime:
    """ISO-8601 (naive means UTC) or ``now``."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        raise UsageError(
            f"bad --as-of {text!r}: use ISO-8601 (2026-01-01T12:00:00Z) or now"
        ) from None
    except OverflowError:  # a zone that moves it out of years 1-9999 in UTC
        raise UsageError(f"bad --as-of {text!r}: out of the range of dates") from None


@contextmanager
def _connection(ctx: typer.Context) -> Iterator[Connection]:
    settings = settings_from(ctx)
    engine = make_engine(settings.database_url, settings=settings)
    try:
        check_database(engine)
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise ShopstreamError(
            f"query failed: {describe_db_error(exc)} "
            "(is the database migrated? run 'shopstream db upgrade' and the consumers)"
        ) from None
    finally:
        engine.dispose()


# -- output --------------------------------------------------------------------------------


def _emit(fmt: OutputFormat, rows: list[T], table: Callable[[], Table]) -> None:
    if fmt is OutputFormat.json:
        print_json(rows)
    else:
        console.print(table())


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, timedelta):
        return _duration_text(value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _duration_text(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title)
    for name in columns:
        numeric = name in _NUMERIC
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(cell(_text(value)) for value in row))
    return table


_NUMERIC = {
    "total",
    "value",
    "orders",
    "items",
    "subtotal",
    "units",
    "revenue",
    "units sold",
    "units cancelled",
    "refunded",
    "placed",
    "paid",
    "cancelled",
    "spent",
    "qty",
    "unit price",
    "carts",
}


def _orders_table(rows: list[read_queries.OrderSummary]) -> Table:
    return _table(
        "orders",
        ["order", "customer", "status", "total", "currency", "created", "updated"],
        [
            [r.order_id, r.customer_id, r.status, r.total, r.currency, r.created_at, r.updated_at]
            for r in rows
        ],
    )


def _print_order(detail: read_queries.OrderDetail) -> None:
    facts = Table(title=cell(f"order {detail.order_id}"), show_header=False)
    facts.add_column("field")
    facts.add_column("value")
    for name in (
        "customer_id",
        "status",
        "total",
        "currency",
        "cart_id",
        "coupon_code",
        "payment_id",
        "amount_paid",
        "carrier",
        "tracking_number",
        "cancel_reason",
        "created_at",
        "paid_at",
        "confirmed_at",
        "shipped_at",
        "cancelled_at",
        "updated_at",
    ):
        facts.add_row(name, cell(_text(getattr(detail, name))))
    console.print(facts)
    console.print(
        _table(
            "lines",
            ["line", "sku", "qty", "unit price"],
            [[ln.line_no, ln.sku, ln.quantity, ln.unit_price] for ln in detail.lines],
        )
    )
    console.print(
        _table(
            "status history",
            ["seq", "from", "to", "event", "at"],
            [
                [h.seq, h.from_status, h.to_status, h.event_type, h.occurred_at]
                for h in detail.history
            ],
        )
    )


def _carts_table(rows: list[read_queries.CartView]) -> Table:
    return _table(
        "carts",
        ["cart", "customer", "state", "items", "subtotal", "currency", "last activity", "order"],
        [
            [
                r.cart_id,
                r.customer_id,
                r.state,
                r.item_count,
                r.subtotal,
                r.currency,
                r.last_activity_at,
                r.order_id,
            ]
            for r in rows
        ],
    )


def _products_table(
    rows: list[read_queries.ProductSalesView], title: str = "sales by product"
) -> Table:
    return _table(
        title,
        ["sku", "currency", "units sold", "revenue", "orders", "units cancelled", "refunded"],
        [
            [
                r.sku,
                r.currency,
                r.units_sold,
                r.revenue,
                r.orders,
                r.units_cancelled,
                r.revenue_cancelled,
            ]
            for r in rows
        ],
    )


def customers_table(rows: list[read_queries.CustomerView]) -> Table:
    return _table(
        "customers",
        [
            "customer",
            "currency",
            "placed",
            "paid",
            "cancelled",
            "spent",
            "first order",
            "last order",
        ],
        [
            [
                r.customer_id,
                r.currency,
                r.orders_placed,
                r.orders_paid,
                r.orders_cancelled,
                r.total_spent,
                r.first_order_at,
                r.last_order_at,
            ]
            for r in rows
        ],
    )


def print_summary(result: read_queries.Summary) -> None:
    console.print(
        _table(
            "orders by status",
            ["status", "currency", "orders", "value"],
            [[s.status, s.currency, s.orders, s.value] for s in result.orders_by_status],
        )
    )
    console.print(
        _table(
            "revenue (net of cancellations)",
            ["currency", "units sold", "revenue", "units cancelled", "refunded"],
            [
                [r.currency, r.units_sold, r.revenue, r.units_cancelled, r.revenue_cancelled]
                for r in result.revenue
            ],
        )
    )
    console.print(_products_table(list(result.top_products), "top products"))
    carts = result.carts
    abandoned_value = ", ".join(f"{value} {currency}" for currency, value in carts.abandoned_value)
    console.print(
        f"carts as of {_text(result.as_of)} (abandoned after {_text(result.abandoned_after)} idle)"
    )
    states = [
        ["ACTIVE", carts.active],
        ["ABANDONED", carts.abandoned],
        ["CHECKED_OUT", carts.checked_out],
    ]
    console.print(_table("carts", ["state", "carts"], states))
    if abandoned_value:
        console.print(f"left in abandoned carts: {abandoned_value}")
