"""The limits of valid values, defined once.

The typed events (``shopstream/events.py``) refuse a value outside them, the database
columns take their lengths and precisions from them (``shopstream/db/models.py``), and
``docs/limits.md`` shows them as a table (:func:`markdown_table`; a unit test keeps the
two equal). So anything the producers send and the projections store fits every
column on SQLite and PostgreSQL alike.

Text: lengths count characters (code points, as PostgreSQL's ``VARCHAR(n)`` does).
Every text field must hold something other than spaces, be valid Unicode (no lone
surrogates: they cannot be encoded as UTF-8) and hold no control character: no NUL
(PostgreSQL cannot store it), no other C0 control (U+0001-U+001F: tab and newline
included, every value is one line), no DEL and no C1 control (U+0080-U+009F). Those
would reach a terminal raw (escape sequences) or a log line split in two.

Numbers: a quantity is a whole number from 1 to :data:`MAX_QUANTITY`; money is
non-negative with at most two decimals and fits ``NUMERIC(12, 2)`` (Avro
``decimal(12, 2)``), and so does a line's amount (quantity x unit price). Sums that
grow with history (a cart's subtotal, a product's revenue, a customer's spend) are
stored as ``NUMERIC(18, 2)`` (:data:`SUM_PRECISION`): 18 digits of cents still fit the
signed 64-bit integer SQLite stores money in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

CENT: Final = Decimal("0.01")
MONEY_PRECISION: Final = 12
"""Digits of one amount (a price, a line, an order total, a payment): NUMERIC(12, 2)."""
SUM_PRECISION: Final = 18
"""Digits of a sum over history (subtotal, revenue, spend): NUMERIC(18, 2). 10**18 cents
is below 2**63, so it fits SQLite's integer cents too."""
MONEY_SCALE: Final = 2
MAX_MONEY: Final = Decimal(10**MONEY_PRECISION - 1).scaleb(-MONEY_SCALE)
MAX_SUM: Final = Decimal(10**SUM_PRECISION - 1).scaleb(-MONEY_SCALE)
MAX_QUANTITY: Final = 1_000_000
"""Units of one sku in one event or one order line."""
MAX_ORDER_LINES: Final = 1_000
CURRENCY_LENGTH: Final = 3
UUID_LENGTH: Final = 36

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class TextLimit:
    """The longest value of a kind of text field, and what it is."""

    max_length: int
    what: str

    def problem(self, value: object) -> str | None:
        """Why ``value`` breaks this limit (the rule), or None when it is valid."""
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters, got {len(value)}"
        if value.isprintable():  # fast path: no control character, no surrogate
            return None
        if _SURROGATE.search(value):
            return "must be valid Unicode text (no lone surrogates)"
        control = _CONTROL.search(value)
        if control is not None:
            return f"must not contain control characters (found U+{ord(control.group()):04X})"
        return None


ID = TextLimit(100, "an id of a cart, a customer or an order")
SKU = TextLimit(100, "a product's sku")
COUPON_CODE = TextLimit(100, "a coupon code")
PAYMENT_ID = TextLimit(100, "a payment id")
CARRIER = TextLimit(100, "a carrier's name")
TRACKING_NUMBER = TextLimit(100, "a tracking number")
REASON = TextLimit(500, "why an order was cancelled")
CORRELATION_ID = TextLimit(200, "a correlation id (free text tying events together)")
PRODUCT_NAME = TextLimit(200, "a product's name (the services' catalog; in no event)")
CATEGORY = TextLimit(100, "a product's category (the services' catalog; in no event)")
IDEMPOTENCY_KEY_LENGTH: Final = 255
"""Longest ``Idempotency-Key`` the services accept and store."""

#: Every text field of the events → its limit (``lines[].sku`` for order lines).
TEXT_FIELDS: Final[dict[str, TextLimit]] = {
    "cart_id": ID,
    "customer_id": ID,
    "order_id": ID,
    "sku": SKU,
    "coupon_code": COUPON_CODE,
    "payment_id": PAYMENT_ID,
    "carrier": CARRIER,
    "tracking_number": TRACKING_NUMBER,
    "reason": REASON,
    "correlation_id": CORRELATION_ID,
}


def text_problem(field_name: str, value: object) -> str | None:
    """The rule ``value`` breaks as field ``field_name`` (``lines[3].sku`` is a sku)."""
    return TEXT_FIELDS[field_name.rpartition(".")[2]].problem(value)


def quantity_problem(value: object) -> str | None:
    if type(value) is not int or not 1 <= value <= MAX_QUANTITY:
        return f"must be a positive integer, at most {MAX_QUANTITY:,}"
    return None


def money_problem(value: object) -> str | None:
    """The rule ``value`` breaks as one amount of money (None: it is a valid amount)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return "must be a decimal amount"
    if value < 0:
        return "must not be negative"
    if value > MAX_MONEY:
        return f"must be at most {MAX_MONEY} (decimal {MONEY_PRECISION},{MONEY_SCALE})"
    if value.quantize(CENT) != value:
        return "must have at most 2 decimals"
    return None


def line_amount_problem(quantity: int, unit_price: Decimal) -> str | None:
    """Why a line of ``quantity`` x ``unit_price`` is refused (its amount too large)."""
    amount = unit_price * quantity
    if amount > MAX_MONEY:
        return f"quantity x unit_price ({amount}) must be at most {MAX_MONEY}"
    return None


def currency_problem(value: object) -> str | None:
    if not (
        isinstance(value, str)
        and len(value) == CURRENCY_LENGTH
        and value.isascii()
        and value.isalpha()
        and value.isupper()
    ):
        return "must be 3 upper-case letters (e.g. EUR)"
    return None


# -- the table the docs show -------------------------------------------------------------


def markdown_table() -> str:
    """The limits as the Markdown table ``docs/limits.md`` holds between its markers."""
    rows = [("field", "limit")]
    rows.append(("`event_id`", f"a UUID ({UUID_LENGTH} characters in canonical form)"))
    rows.extend(
        (f"`{name}`", f"1-{limit.max_length} characters: {limit.what}")
        for name, limit in TEXT_FIELDS.items()
    )
    rows.append(
        (
            "every text field",
            "not blank; no control character (U+0000-U+001F, U+007F-U+009F); no lone surrogate",
        )
    )
    rows.append(("`currency`", f"{CURRENCY_LENGTH} upper-case letters A-Z (ISO 4217 style)"))
    rows.append(("`quantity`", f"positive integer, at most {MAX_QUANTITY:,}"))
    rows.append(("`lines`", f"1 to {MAX_ORDER_LINES:,} order lines"))
    rows.append(
        (
            "`unit_price`, `total`, `amount`",
            f"0 to {MAX_MONEY}, at most 2 decimals: NUMERIC({MONEY_PRECISION},{MONEY_SCALE})",
        )
    )
    rows.append(("line amount", f"quantity x unit_price at most {MAX_MONEY}"))
    rows.append(
        (
            "stored sums (subtotal, revenue, spend)",
            f"up to {MAX_SUM}: NUMERIC({SUM_PRECISION},{MONEY_SCALE})",
        )
    )
    lines = [f"| {name} | {rule} |" for name, rule in rows]
    lines.insert(1, "|---|---|")
    return "\n".join(lines) + "\n"
