"""Events the database refuses: which errors are the data's fault, and how a batch is
applied around them without stopping the group.

A database error is the data's fault when retrying the same statement can never
succeed: PostgreSQL's SQLSTATE classes ``22`` (data exception: a text longer than
its column, a number out of the column's range) and ``23`` (integrity constraint
violation: a CHECK, a trigger's refusal raised with such a code, a duplicate key),
the same refusals psycopg makes before sending (a NUL character in a text), and
SQLite's ``IntegrityError`` and ``DataError`` (and an integer too large for its
64-bit INTEGER, which ``sqlite3`` refuses as ``OverflowError``). Everything else
(connection lost, serialization failures, deadlocks, timeouts, a locked SQLite file)
is not a refusal: the runner pauses and retries the batch.

:class:`RefusalIsolator` applies a batch's events in order, each sub-batch inside a
savepoint. When the database refuses a sub-batch, it is rolled back to its savepoint
and split in two halves, applied in order; a half that fails is split again, down to
the single events responsible, which are rolled back and reported; everything else
is applied once. A sub-batch is never applied twice: only refused ones are retried,
as smaller pieces. And when the left half of a refused sub-batch is applied without
a refusal, the right half is known to fail, so it is split at once without trying it
whole. One poison event in a sub-batch of ``n`` costs about ``log2(n)`` extra
(smaller) applies, and about ``1.5 n`` events of wasted work.

PostgreSQL often names the refused row (the ``COPY`` line it was at, a key's value):
when one of the sub-batch's events has a text quoted there (its id, its aggregate's
id, the refused value), that event is tried alone first, between the events before
it and the events after it (three applies instead of about ``1.5 log2(n)``; the
order of the events is kept). A wrong guess only costs those applies: the pieces
that still fail are bisected.

The wasted work is what matters for throughput, more than the number of applies: a
batch of 5,000 applied whole and refused wastes 5,000 events of work (loads, rows
built, rows sent) before the search starts, whether the database names the event or
not. So after a batch with a refusal, the next :data:`CAREFUL_BATCHES` batches are
applied in :data:`CAREFUL_PIECES` savepointed pieces from the start, and only the
piece holding the poison is searched. A clean stream pays one savepoint per batch.
Measured (PostgreSQL, a poison event in every 5,000-event batch, the transaction's
CPU per event): whole batches 1.55x a clean stream's; in pieces 1.2x (8) to 1.3x (16)
while a refused piece's rows had to be loaded again; since a refused piece gives its
rows back (order-state works on copies), 4 pieces 1.17x and 8 pieces 1.2x. Each piece
adds a savepoint, a load and its statements; a refused one wastes its work.

Pieces cut by position also write more rows: an order created in one piece and paid
in the next is inserted, then updated (on the simulator's spread-out orders, three
times the updates of the whole batch). When the projection's keys are independent
(:attr:`~consumers.projections.base.Projection.independent_keys`), pieces are cut by
key instead, and a refused piece whose event the database named is applied as two:
every other key at once, then the named event's key (bisected if it is refused
again). ``bench/poison.py``, PostgreSQL, events/s poisoned / clean: 0.74 by position,
0.85 by key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import StatementError

from consumers.projections.base import Envelope, Rejection

REASON = "db-rejected"
"""The dead letters' ``dlq.reason`` for events the database refused."""

REFUSED_SQLSTATE_CLASSES = frozenset({"22", "23"})
"""PostgreSQL: data exception, integrity constraint violation."""

MESSAGE_MAX_CHARS = 300

CAREFUL_PIECES = 4
"""Savepointed pieces per batch while refusals are recent (see the module docstring)."""

CAREFUL_BATCHES = 32
"""Batches applied in pieces after the last batch with a refusal."""

MIN_PIECE = 16
"""Pieces are never made smaller than this many events up front."""


@dataclass(frozen=True, slots=True)
class DbRefusal:
    """Why the database refused: its code and its message (one line, bounded)."""

    code: str
    """The SQLSTATE (PostgreSQL), the SQLite error name (``SQLITE_CONSTRAINT_CHECK``), or
    the driver's exception name when the driver refused before sending."""
    message: str
    where: str = ""
    """PostgreSQL's context and detail, which often quote the refused row (``COPY
    orders, line 12: "..."``, ``Key (id)=(...)``): a hint of which event it came from."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class RefusedEvent:
    envelope: Envelope
    refusal: DbRefusal


def db_refusal(exc: BaseException) -> DbRefusal | None:
    """The refusal ``exc`` is when the data is at fault; None for any other error."""
    original: BaseException = exc
    if isinstance(exc, StatementError) and isinstance(exc.orig, BaseException):
        original = exc.orig
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):  # PostgreSQL answered with a code
        if sqlstate[:2] not in REFUSED_SQLSTATE_CLASSES:
            return None
        diag = getattr(original, "diag", None)
        where = " ".join(
            filter(None, [getattr(diag, "context", None), getattr(diag, "message_detail", None)])
        )
        return DbRefusal(sqlstate, _one_line(original), where)
    if isinstance(original, psycopg.DataError | psycopg.IntegrityError):
        return DbRefusal(type(original).__name__, _one_line(original))  # refused by psycopg
    if isinstance(original, sqlite3.IntegrityError | sqlite3.DataError):
        # sqlite3 names its own errors; the Money type raises a bare DataError
        name = getattr(original, "sqlite_errorname", None) or type(original).__name__
        return DbRefusal(name, _one_line(original))
    if isinstance(original, OverflowError):  # sqlite3: an integer beyond 64 bits
        return DbRefusal(type(original).__name__, _one_line(original))
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:MESSAGE_MAX_CHARS]


Apply = Callable[[Connection, Sequence[Envelope]], list[Rejection]]


@dataclass
class Outcome:
    """What a batch's events came to: the projection's own refusals and the database's."""

    rejections: list[Rejection] = field(default_factory=list)
    refused: list[RefusedEvent] = field(default_factory=list)
    applies: int = 0
    """Sub-batches handed to the projection (tried, successful or not)."""
    bisected: bool = False
    """A refused sub-batch had to be bisected (the database named no event)."""


@dataclass
class RefusalIsolator:
    """Applies batches with :attr:`apply`, isolating the events the database refuses.

    Keeps one piece of state between batches: how many more batches to apply in pieces
    (it runs on one thread at a time: the group's writer).
    """

    apply: Apply
    independent_keys: bool = False
    """The projection's events of different keys commute
    (:attr:`~consumers.projections.base.Projection.independent_keys`): pieces are cut
    by key, and a named event's key is set apart from the rest of its piece."""
    careful_batches_left: int = 0

    def apply_batch(self, connection: Connection, batch: Sequence[Envelope]) -> Outcome:
        outcome = Outcome()
        if not batch:
            return outcome
        count = self._pieces_for(len(batch))
        cut = _pieces_by_key if self.independent_keys else _pieces
        for piece in cut(batch, count) if count > 1 else [batch]:
            self._apply_piece(connection, piece, outcome, known_bad=False)
        if outcome.refused:
            self.careful_batches_left = CAREFUL_BATCHES
        elif self.careful_batches_left:
            self.careful_batches_left -= 1
        return outcome

    def _pieces_for(self, size: int) -> int:
        if not self.careful_batches_left:
            return 1
        return max(1, min(CAREFUL_PIECES, size // MIN_PIECE))

    def _apply_piece(
        self,
        connection: Connection,
        piece: Sequence[Envelope],
        outcome: Outcome,
        known_bad: bool,
    ) -> bool:
        """Apply ``piece`` (in order); True when none of its events was refused.

        ``known_bad``: the piece is known to be refused as a whole, so it is split at
        once (a single event is still tried: it is applied if it is not refused).
        """
        if not piece:
            return True
        refusal: DbRefusal | None = None
        if not known_bad or len(piece) == 1:
            outcome.applies += 1
            try:
                with connection.begin_nested():
                    rejections = self.apply(connection, piece)
            except Exception as exc:
                refusal = db_refusal(exc)
                if refusal is None:
                    raise
            else:
                outcome.rejections.extend(rejections)
                return True
        if len(piece) == 1:
            assert refusal is not None
            outcome.refused.append(RefusedEvent(piece[0], refusal))
            return False
        suspect = _suspect(piece, refusal)
        if suspect is not None and self.independent_keys:
            key = piece[suspect].event.key
            others = [env for env in piece if env.event.key != key]
            if others:  # the rest of the piece at once, then the named event's key
                self._apply_piece(connection, others, outcome, known_bad=False)
                mine = [env for env in piece if env.event.key == key]
                self._apply_piece(connection, mine, outcome, known_bad=False)
                return False
        if suspect is not None:  # try the event the database named alone, first
            before, rest = piece[:suspect], piece[suspect + 1 :]
            self._apply_piece(connection, before, outcome, known_bad=False)
            self._apply_piece(connection, piece[suspect : suspect + 1], outcome, known_bad=False)
            self._apply_piece(connection, rest, outcome, known_bad=False)
            return False
        outcome.bisected = True
        middle = len(piece) // 2
        left_clean = self._apply_piece(connection, piece[:middle], outcome, known_bad=False)
        self._apply_piece(connection, piece[middle:], outcome, known_bad=left_clean)
        return False


SUSPECT_MIN_CHARS = 8
"""Shorter texts (a currency, a small number) say nothing about which event it was."""


def _suspect(piece: Sequence[Envelope], refusal: DbRefusal | None) -> int | None:
    """The first event of ``piece`` one of whose texts the database quoted, if any."""
    if refusal is None or not refusal.where:
        return None
    where = refusal.where
    for index, env in enumerate(piece):  # first the aggregate ids: cheap, and usually quoted
        key = env.event.key
        if len(key) >= SUSPECT_MIN_CHARS and key in where:
            return index
    for index, env in enumerate(piece):
        for value in env.event.to_record().values():
            if isinstance(value, str) and len(value) >= SUSPECT_MIN_CHARS and value in where:
                return index
    return None


def _pieces(batch: Sequence[Envelope], count: int) -> list[Sequence[Envelope]]:
    """``count`` consecutive pieces of about the same size."""
    size = -(-len(batch) // count)
    return [batch[start : start + size] for start in range(0, len(batch), size)]


def _pieces_by_key(batch: Sequence[Envelope], count: int) -> list[Sequence[Envelope]]:
    """``count`` pieces, each holding every event of its keys, in the batch's order: no
    row is written by two pieces (cut by position, an order created in one piece and
    paid in the next is inserted, then updated; here it is inserted once, paid)."""
    pieces: list[list[Envelope]] = [[] for _ in range(count)]
    for env in batch:
        pieces[hash(env.event.key) % count].append(env)
    return [piece for piece in pieces if piece]
