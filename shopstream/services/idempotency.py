"""``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header) for POST and DELETE.

Everything about a key happens in the command's own transaction
(:class:`shopstream.services.transactions.CommandExecutor`):

1. :func:`claim` takes a lock on the key without waiting and looks the key up. On
   PostgreSQL both are one statement: a transaction-scoped advisory lock (64 bits of
   the key's SHA-256), held until commit or rollback, also across service processes,
   and the key's row. On SQLite (one process) the lock is the in-process
   :class:`LocalKeyLocks`. Lock not free → :class:`KeyInFlight` (409). The key was
   used before → same fingerprint (SHA-256 of method, path and body): the stored
   response is replayed, marked with :data:`REPLAY_HEADER`, and nothing is written;
   another fingerprint → :class:`KeyReused` (422).
2. Otherwise the command runs and :func:`store` saves its response on the key row in
   the same transaction as the state change and its outbox rows.

One race is left by doing both in one statement: its snapshot is taken before the
lock, so when the key's first request commits in between (and releases the lock), the
key looks new. That transaction's :func:`store` then hits the key's primary key and
raises :class:`KeyStoredMeanwhile`; the executor rolls it back and runs the request
once more, which replays the stored response.

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
from typing import Any

from sqlalchemy import Connection, Row, Table, bindparam, delete, select, text
from sqlalchemy.exc import IntegrityError

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


class KeyStoredMeanwhile(Exception):
    """The key's first request committed after this one's :func:`claim` read (see the
    module docstring): run this request again."""


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


_LOOKUP = select(keys.c.fingerprint, keys.c.status_code, keys.c.response).where(
    keys.c.key == bindparam("key")
)
_INSERT_KEY = keys.insert()
_CLAIM = text(
    "SELECT pg_try_advisory_xact_lock(:lock_id) AS locked, k.fingerprint, k.status_code, "
    "k.response FROM (SELECT 1) AS one "
    "LEFT JOIN service_idempotency_keys AS k ON k.key = :key"
)


def claim(connection: Connection, key: str, print_: str) -> StoredResponse | None:
    """Lock ``key`` until this transaction ends and return its stored response (None
    when the key is new). Raises :class:`KeyInFlight` when another request holds it and
    :class:`KeyReused` when it was used for another request. PostgreSQL: one statement;
    SQLite relies on :class:`LocalKeyLocks` for the lock."""
    if connection.dialect.name != "postgresql":
        return _stored(connection.execute(_LOOKUP, {"key": key}).one_or_none(), print_)
    lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    row = connection.execute(_CLAIM, {"lock_id": lock_id, "key": key}).one()
    if not row.locked:
        raise KeyInFlight
    return _stored(row if row.fingerprint is not None else None, print_)


def _stored(row: Row[Any] | None, print_: str) -> StoredResponse | None:
    if row is None:
        return None
    if row.fingerprint != print_:
        raise KeyReused
    return StoredResponse(row.status_code, row.response)


def store(
    connection: Connection, key: str, print_: str, response: StoredResponse, now: datetime
) -> None:
    try:
        connection.execute(
            _INSERT_KEY,
            {
                "key": key,
                "fingerprint": print_,
                "status_code": response.status_code,
                "response": response.body,
                "created_at": now,
            },
        )
    except IntegrityError:  # the key's primary key: stored meanwhile
        raise KeyStoredMeanwhile from None


def purge(connection: Connection, now: datetime) -> int:
    """Delete keys first used more than :data:`RETENTION` ago; returns how many."""
    result = connection.execute(delete(keys).where(keys.c.created_at < now - RETENTION))
    return result.rowcount
