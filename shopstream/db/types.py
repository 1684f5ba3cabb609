"""Column types that behave the same on SQLite and PostgreSQL.

* :class:`Money` — exact ``Decimal`` with 2 places: ``NUMERIC(precision, 2)`` on
  PostgreSQL (12 digits unless told) and integer cents on SQLite (which has no exact
  decimal type; sums and ordering stay exact). Up to 18 digits, so cents fit int64.
* :class:`UtcDateTime` — always returns timezone-aware UTC datetimes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

from shopstream.domain.limits import CENT, MONEY_PRECISION, MONEY_SCALE, SUM_PRECISION


@cache
def _sqlite_cents(precision: int) -> Callable[[Decimal | None], int | None]:
    """Decimal → integer cents, refusing what NUMERIC(precision, 2) would refuse.

    The refusal is a DB-API ``DataError`` as PostgreSQL's "numeric field overflow"
    (SQLSTATE 22003) is, so both databases refuse the same values the same way.
    """
    bound = 10**precision

    def cents(value: Decimal | None) -> int | None:
        if value is None:
            return None
        number = int(Decimal(value).scaleb(MONEY_SCALE).to_integral_exact())
        if not -bound < number < bound:
            raise sqlite3.DataError(
                f"numeric field overflow: {value} does not fit NUMERIC({precision}, 2)"
            )
        return number

    return cents


def _as_utc(value: datetime) -> datetime:
    """``value`` in UTC (naive means UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=4096)
def _sqlite_utc_text(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DATETIME stores: naive UTC, microseconds.

    Memoized: a batch formats each event's timestamp more than once (its history row,
    its order's ``*_at`` and ``updated_at``), and ``isoformat`` of an aware datetime
    costs about 1 µs. Equal datetimes are the same instant, so the same text.
    """
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = _as_utc(value)
    return value.isoformat(" ", "microseconds")[:26]


class Money(TypeDecorator[Decimal]):
    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = MONEY_PRECISION) -> None:
        if not MONEY_SCALE < precision <= SUM_PRECISION:
            raise ValueError(f"Money precision {precision} does not fit int64 cents")
        super().__init__(precision, MONEY_SCALE)
        self.precision = precision

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return _sqlite_cents(self.precision)(value)
        return Decimal(value).quantize(CENT)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        # SQLite: straight to integer cents (the bulk writers bind many rows per batch).
        if dialect.name == "sqlite":
            return _sqlite_cents(self.precision)
        return super().bind_processor(dialect)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / 100).quantize(CENT)
        return Decimal(value).quantize(CENT)


class UtcDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = _as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        # SQLite: straight to the text SQLAlchemy's DATETIME stores
        # ("YYYY-MM-DD HH:MM:SS.ffffff", naive UTC), in one step instead of two.
        if dialect.name == "sqlite":
            return _sqlite_utc_text
        return super().bind_processor(dialect)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
