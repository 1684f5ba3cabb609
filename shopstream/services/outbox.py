"""The transactional outbox table: rows written with the state change, read by the relay.

A command's events are inserted here in the same transaction as the state change they
describe (:func:`append`), so both commit or neither does. The relay reads *pending*
rows (``sent_at IS NULL``, a partial index) in id order and marks them sent once Kafka
acknowledged them (:func:`mark_sent`). It never keeps an id cursor: a row whose
transaction took its id early but committed late is simply pending on the next read,
so it cannot be skipped (see docs/services.md for why this also keeps each aggregate's
events in commit order).

On PostgreSQL the inserting transaction also sends ``NOTIFY`` on :data:`CHANNEL`
(delivered at commit, one per transaction), which wakes the relay.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Table, bindparam, func, select, text, update

from shopstream.db.models import OutboxRow
from shopstream.events import DomainEvent, event_from_json

CHANNEL = "service_outbox"
outbox: Table = OutboxRow.__table__  # type: ignore[assignment]


def append(connection: Connection, events: Sequence[DomainEvent], now: datetime) -> None:
    """Insert ``events`` (in this order) into the outbox, in the caller's transaction."""
    if not events:
        return
    connection.execute(
        outbox.insert(),
        [
            {
                "aggregate_id": event.key,
                "event_type": event.event_type,
                "event_id": event.event_id,
                "payload": json.dumps(event.to_json(), separators=(",", ":")),
                "created_at": now,
                "sent_at": None,
            }
            for event in events
        ],
    )
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {CHANNEL}"))


@dataclass(frozen=True, slots=True)
class PendingRow:
    id: int
    event: DomainEvent
    created_at: datetime


def pending(connection: Connection, limit: int) -> list[PendingRow]:
    """Up to ``limit`` unsent rows, oldest id first, with their events rebuilt."""
    rows = connection.execute(
        select(outbox.c.id, outbox.c.payload, outbox.c.created_at)
        .where(outbox.c.sent_at.is_(None))
        .order_by(outbox.c.id)
        .limit(limit)
    )
    return [
        PendingRow(row.id, event_from_json(json.loads(row.payload)), row.created_at) for row in rows
    ]


def mark_sent(connection: Connection, acknowledged: Sequence[tuple[int, datetime]]) -> None:
    """Mark rows as acknowledged by Kafka: ``(id, when)`` pairs."""
    if acknowledged:
        connection.execute(
            update(outbox)
            .where(outbox.c.id == bindparam("row_id"))
            .values(sent_at=bindparam("acked_at")),
            [{"row_id": row_id, "acked_at": when} for row_id, when in acknowledged],
        )


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """The outbox seen from ``shopstream inspect outbox``."""

    pending: int
    oldest_pending_age_s: float | None
    sent: int
    lag_p50_s: float | None
    lag_p99_s: float | None
    lag_max_s: float | None
    lag_sample: int
    last_sent_at: datetime | None


def stats(connection: Connection, now: datetime, sample: int = 1000) -> OutboxStats:
    """Pending rows and the commit → acknowledged lag of the last ``sample`` sent rows."""
    pending_count, oldest = connection.execute(
        select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))
    ).one()
    sent = connection.execute(
        select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_not(None))
    ).scalar_one()
    recent = connection.execute(
        select(outbox.c.created_at, outbox.c.sent_at)
        .where(outbox.c.sent_at.is_not(None))
        .order_by(outbox.c.id.desc())
        .limit(sample)
    ).all()
    lags = sorted((row.sent_at - row.created_at) / timedelta(seconds=1) for row in recent)
    last_sent = max((row.sent_at for row in recent), default=None)
    return OutboxStats(
        pending=pending_count,
        oldest_pending_age_s=(now - oldest) / timedelta(seconds=1) if oldest else None,
        sent=sent,
        lag_p50_s=_quantile(lags, 0.50),
        lag_p99_s=_quantile(lags, 0.99),
        lag_max_s=lags[-1] if lags else None,
        lag_sample=len(lags),
        last_sent_at=last_sent,
    )


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
