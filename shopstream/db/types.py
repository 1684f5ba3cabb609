"""Column types that behave the same on SQLite and PostgreSQL.

* :class:`Money` — exact ``Decimal`` with 2 places: ``NUMERIC(12, 2)`` on PostgreSQL and
  integer cents on SQLite (which has no exact decimal type; sums and ordering stay exact).
* :class:`UtcDateTime` — always returns timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

CENT = Decimal("0.01")


def _sqlite_cents(value: Decimal | None) -> int | None:
    if value is None:
        return None
    return int(Decimal(value).scaleb(2).to_integral_exact())


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
    impl = Numeric(12, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(12, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return _sqlite_cents(value)
        return Decimal(value).quantize(CENT)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        # SQLite: straight to integer cents (the bulk writers bind many rows per batch).
        if dialect.name == "sqlite":
            return _sqlite_cents
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
