"""The column types' one-step SQLite bind processors store exactly what the generic
path (process_bind_param, then the dialect type's own processor) would store: the
stored text is compared as text in queries (e.g. abandoned carts), so it must not
change format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import BigInteger, DateTime
from sqlalchemy.dialects import sqlite

from shopstream.db.types import Money, UtcDateTime

DIALECT = sqlite.dialect()


def generic(type_: Money | UtcDateTime, impl: Any, value: Any) -> Any:
    converted = type_.process_bind_param(value, DIALECT)
    process = impl.dialect_impl(DIALECT).bind_processor(DIALECT)
    return process(converted) if process and converted is not None else converted


@pytest.mark.parametrize(
    "moment",
    [
        None,
        datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: still 6 digits
        datetime(2026, 1, 2, 3, 4, 5, 7),  # naive means UTC
        datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-8))),
    ],
)
def test_utc_datetime_text_on_sqlite(moment: datetime | None) -> None:
    fast = UtcDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    assert fast is not None
    assert fast(moment) == generic(UtcDateTime(), DateTime(), moment)


@pytest.mark.parametrize(
    "amount", [None, Decimal("0"), Decimal("0.01"), Decimal("12.5"), Decimal("9999999999.99")]
)
def test_money_cents_on_sqlite(amount: Decimal | None) -> None:
    fast = Money().dialect_impl(DIALECT).bind_processor(DIALECT)
    assert fast is not None
    assert fast(amount) == generic(Money(), BigInteger(), amount)
    if amount is not None:
        assert fast(amount) == int(amount * 100)
