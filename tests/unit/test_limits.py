"""The domain limits: one definition, which the events, the columns and the docs follow."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Numeric, String

from shopstream.db.models import Base
from shopstream.db.types import Money
from shopstream.domain import limits
from shopstream.events import CartItemAdded, EventValidationError, OrderCreated, OrderLine

DOCS = Path(__file__).parents[2] / "docs" / "limits.md"


def test_the_docs_show_the_limits_table() -> None:
    text = DOCS.read_text()
    found = re.search(r"<!-- limits:begin[^>]*-->\n(.*?)<!-- limits:end -->", text, re.DOTALL)
    assert found is not None, "docs/limits.md lost its limits:begin/end markers"
    assert found.group(1) == limits.markdown_table(), "regenerate the table in docs/limits.md"


#: the projections' tables: their columns hold the events' values
READ_MODELS = (
    "orders", "order_lines", "order_status_history", "carts", "cart_items",
    "product_sales", "customer_stats", "sales_orders", "sales_order_lines",
)  # fmt: skip


def test_every_text_column_of_a_limited_field_has_its_length() -> None:
    """A read-model column named after an event field is exactly as long as its limit."""
    checked = 0
    for table in (Base.metadata.tables[name] for name in READ_MODELS):
        for column in table.columns:
            name = "reason" if column.name == "cancel_reason" else column.name
            if name in limits.TEXT_FIELDS:
                assert isinstance(column.type, String)
                assert column.type.length == limits.TEXT_FIELDS[name].max_length, column
                checked += 1
            if name == "currency":
                assert isinstance(column.type, String)
                assert column.type.length == limits.CURRENCY_LENGTH
    assert checked >= 15


def test_sums_are_wider_than_one_amount_and_fit_int64_cents() -> None:
    sums = {"subtotal", "revenue", "revenue_cancelled", "total_spent"}
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, Money):
                impl = column.type.impl
                assert isinstance(impl, Numeric)
                wanted = limits.SUM_PRECISION if column.name in sums else limits.MONEY_PRECISION
                assert (impl.precision, impl.scale) == (wanted, 2), column
    assert int(limits.MAX_SUM.scaleb(2)) < 2**63


def cart_item(**overrides: object) -> CartItemAdded:
    values: dict[str, object] = {
        "cart_id": "c-1",
        "customer_id": "u-1",
        "sku": "SKU-1",
        "quantity": 1,
        "unit_price": Decimal("1.00"),
        "currency": "EUR",
    }
    values.update(overrides)
    return CartItemAdded(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("sku", "S" * 101, "at most 100 characters, got 101"),
        ("cart_id", "c\x00", "control characters (found U+0000)"),
        ("customer_id", "u\x1b[31m", "control characters (found U+001B)"),
        ("sku", "a\u009bb", "control characters (found U+009B)"),
        ("sku", "a\nb", "control characters (found U+000A)"),
        ("customer_id", "\ud800", "no lone surrogates"),
        ("correlation_id", "x" * 201, "at most 200 characters"),
        ("quantity", limits.MAX_QUANTITY + 1, "at most 1,000,000"),
        ("unit_price", Decimal("10000000000.00"), "at most 9999999999.99"),
        ("currency", "eur", "3 upper-case letters"),
    ],
)
def test_a_value_outside_the_limits_is_refused_with_the_field_and_rule(
    field: str, value: object, rule: str
) -> None:
    with pytest.raises(EventValidationError) as caught:
        cart_item(**{field: value})
    assert caught.value.field_name == field
    assert rule in caught.value.rule


def test_the_limits_themselves_are_valid() -> None:
    event = cart_item(
        sku="S" * 100,
        customer_id="Zoë 🛒 ",
        quantity=limits.MAX_QUANTITY,
        unit_price=Decimal("9999.99"),
    )
    assert event.quantity * event.unit_price <= limits.MAX_MONEY


def test_a_line_amount_past_numeric_12_2_is_refused() -> None:
    with pytest.raises(EventValidationError, match=r"CartItemAdded\.quantity: quantity x"):
        cart_item(quantity=2, unit_price=limits.MAX_MONEY)
    line = OrderLine(sku="S", quantity=3, unit_price=Decimal("5000000000.00"))
    with pytest.raises(EventValidationError, match=r"lines\[0\]: quantity x unit_price"):
        OrderCreated(order_id="o", customer_id="u", lines=(line,), total=Decimal(0), currency="EUR")
    many = tuple(
        OrderLine(sku=f"S{i}", quantity=1, unit_price=Decimal(1))
        for i in range(limits.MAX_ORDER_LINES + 1)
    )
    with pytest.raises(EventValidationError, match="at most 1,000 lines"):
        OrderCreated(order_id="o", customer_id="u", lines=many, total=Decimal(1001), currency="EUR")
