"""``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header) for POST and DELETE.

Everything about a key happens in the command's own transaction
(:class:`shopstream.services.transactions.CommandExecutor`):

1. :func:`lock` takes a lock on the key without waiting: on PostgreSQL a
   transaction-scoped advisory lock (64 bits of the key's SHA-256), held until commit
   or rollback, also across service processes; on SQLite (one process) the in-process
   :class:`LocalKeyLocks`. Not free → :class:`KeyInFlight` (409).
2. :func:`lookup`: the key was used before → same fingerprint (SHA-256 of method,
   path and body): the stored response is replayed, marked with :data:`REPLAY_HEADER`,
   and nothing is written; another fingerprint → :class:`KeyReused` (422).
3. Otherwise the command runs and :func:`store` saves its response on the key row in
   the same transaction as the state change and its outbox rows.

So a key has a stored response exactly when its effect committed. A process killed in
the middle leaves nothing (its transaction and its lock die with its connection), and
the client's retry runs the command as if for the first time. Keys are kept for
:data:`RETENTION` after their first use, then purged (:func:`purge`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Table, delete, func, select

from shopstream.db.models import IdempotencyKey
from shopstream.domain.limits import IDEMPOTENCY_KEY_LENGTH

REPLAY_HEADER = "Idempotent-Replayed"
RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = IDEMPOTENCY_KEY_LENGTH

keys: Table = IdempotencyKey.__table__  # type: ignore[assignment]


class KeyInFlight(Exception):
    """The key's first request has not finished (409)."""


class KeyReused(Exception):
    """The key was first used with another method, path or body (422)."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: str


def parse_key(header: str) -> str | None:
    """The key of an ``Idempotency-Key`` header (an sf-string, quoted; a bare token is
    accepted too), or None when it is not a usable key."""
    value = header.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value or len(value) > MAX_KEY_LENGTH or not value.isascii() or not value.isprintable():
        return None
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class LocalKeyLocks:
    """Keys whose request is running in this process (SQLite: one process)."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._mutex = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._mutex:
            if key in self._held:
                raise KeyInFlight
            self._held.add(key)
        try:
            yield
        finally:
            with self._mutex:
                self._held.discard(key)


def lock(connection: Connection, key: str) -> None:
    """PostgreSQL: take the key's advisory lock until this transaction ends, or raise
    :class:`KeyInFlight` (SQLite relies on :class:`LocalKeyLocks`)."""
    if connection.dialect.name != "postgresql":
        return
    lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    if not connection.execute(select(func.pg_try_advisory_xact_lock(lock_id))).scalar_one():
        raise KeyInFlight


def lookup(connection: Connection, key: str, print_: str) -> StoredResponse | None:
    """The response stored for ``key``, None if the key is new; :class:`KeyReused` if it
    was used for another request."""
    row = connection.execute(
        select(keys.c.fingerprint, keys.c.status_code, keys.c.response).where(keys.c.key == key)
    ).one_or_none()
    if row is None:
        return None
    if row.fingerprint != print_:
        raise KeyReused
    return StoredResponse(row.status_code, row.response)


def store(
    connection: Connection, key: str, print_: str, response: StoredResponse, now: datetime
) -> None:
    connection.execute(
        keys.insert().values(
            key=key,
            fingerprint=print_,
            status_code=response.status_code,
            response=response.body,
            created_at=now,
        )
    )


def purge(connection: Connection, now: datetime) -> int:
    """Delete keys first used more than :data:`RETENTION` ago; returns how many."""
    result = connection.execute(delete(keys).where(keys.c.created_at < now - RETENTION))
    return result.rowcount
