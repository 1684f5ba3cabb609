"""One transaction per command: its idempotency key, its state change and its outbox rows.

:func:`make_service_engine` is the service's engine: on SQLite every transaction
starts with ``BEGIN IMMEDIATE`` (it takes the file's write lock up front, so a command
that reads and then writes never fails to upgrade its lock; SQLite has one writer
anyway), on PostgreSQL a pool of :data:`REQUEST_THREADS` connections (plus the relay's
and the key purge's) without a ping per checkout (a round trip per command; a broken
connection fails its request and SQLAlchemy then drops the pool's connections).

:class:`CommandExecutor` runs a command (:mod:`shopstream.services.commands`) and
commits, in one transaction, the new state, the events in the outbox and the response
stored for the request's ``Idempotency-Key`` (:mod:`shopstream.services.idempotency`).
A refused command commits only its stored response (so a retry gets the same answer):
commands refuse before they write anything, so no savepoint is needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, event

from shopstream.db.engine import make_engine
from shopstream.events import DomainEvent, now_utc
from shopstream.services import idempotency, outbox
from shopstream.services.commands import Refused, Result

REQUEST_THREADS = 8
"""Threads running requests' database work in one process (the server's thread limit):
on two cores more threads only queue on the GIL and on PostgreSQL's CPU, and lengthen
every request's latency (32 threads: p50 200 ms at 130 requests/s)."""
POOL_SIZE = REQUEST_THREADS + 2
"""One connection per request thread, one for the relay's pass, one for the key purge."""
POOL_OVERFLOW = 2
"""Health checks under load."""


def make_service_engine(url: str) -> Engine:
    """The service's engine (see the module docstring)."""
    engine = make_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_pre_ping=False)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_manual_transactions)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # pysqlite must not send its own BEGIN


def _sqlite_begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass(frozen=True, slots=True)
class Response:
    status_code: int
    body: str
    """JSON text."""
    replayed: bool = False


def _json(body: dict[str, Any] | list[Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Request:
    """A command's Idempotency-Key (None without one) and the request's fingerprint."""

    key: str | None
    fingerprint: str


class CommandExecutor:
    """Runs commands in one transaction each; ``on_commit`` is called after a commit
    that wrote events (to wake the relay)."""

    def __init__(self, engine: Engine, on_commit: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._on_commit = on_commit
        self._local_keys = idempotency.LocalKeyLocks() if engine.dialect.name == "sqlite" else None

    def execute(
        self, request: Request, command: Callable[[Connection, datetime], Result]
    ) -> Response:
        """Raises :class:`idempotency.KeyInFlight` / :class:`idempotency.KeyReused`."""
        try:
            return self._execute(request, command)
        except idempotency.KeyStoredMeanwhile:  # rolled back; now it replays
            return self._execute(request, command)

    def _execute(
        self, request: Request, command: Callable[[Connection, datetime], Result]
    ) -> Response:
        key = request.key
        guard = (
            self._local_keys.hold(key) if key is not None and self._local_keys else nullcontext()
        )
        with guard, self._engine.begin() as connection:
            now = now_utc()
            if key is not None:
                stored = idempotency.claim(connection, key, request.fingerprint)
                if stored is not None:
                    return Response(stored.status_code, stored.body, replayed=True)
            try:
                result = command(connection, now)  # refuses before it writes
            except Refused as refusal:
                response = Response(refusal.status, _json(refusal.body()))
                events: tuple[DomainEvent, ...] = ()
            else:
                response = Response(result.status, _json(result.body))
                events = tuple(result.events)
            outbox.append(connection, events, now)
            if key is not None:
                stored_response = idempotency.StoredResponse(response.status_code, response.body)
                idempotency.store(connection, key, request.fingerprint, stored_response, now)
        if events and self._on_commit is not None:
            self._on_commit()
        return response

    def query(self, read: Callable[[Connection], dict[str, Any] | list[Any]]) -> Response:
        """A read-only request: 200 with ``read``'s answer, or its refusal (404)."""
        with self._engine.connect() as connection:
            try:
                return Response(200, _json(read(connection)))
            except Refused as refusal:
                return Response(refusal.status, _json(refusal.body()))
