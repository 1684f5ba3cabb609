"""The contract between the consumer runtime and a projection.

The runtime polls a batch, decodes it, drops events already processed, and hands the
rest to :meth:`Projection.apply` inside the database transaction that also stores the
group's next offsets. The projection applies the events in order and returns the ones
it refuses (with a reason) instead of raising; those are dead-lettered and change no
state.

A projection may keep what it knows of committed rows between batches
(:class:`CommittedRows`), so a batch does not reload what this member wrote: the
runtime calls :meth:`Projection.committed` once the batch's transaction committed and
:meth:`Projection.discard` whenever what is in the database may differ from what the
projection remembers (a failed or conflicting batch, partitions revoked or lost).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Generic, NamedTuple, TypeVar

from sqlalchemy import Connection, Table

from shopstream.events import DomainEvent


class Envelope(NamedTuple):
    """A decoded event and where it came from (a named tuple: one is built per event,
    and a tuple is several times cheaper to build than a frozen dataclass)."""

    event: DomainEvent
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event the projection refused: not applied, sent to the DLQ."""

    envelope: Envelope
    reason: str
    """Short code, e.g. ``illegal-transition`` or ``unknown-order``."""
    detail: str
    """One line for people, e.g. ``OrderPaid not allowed in status CANCELLED``."""


class Projection(ABC):
    """One consumer group's read model."""

    group_id: str
    topic: str
    tables: tuple[Table, ...]
    """The tables this group owns (emptied by a rebuild), children first."""
    independent_keys: bool = False
    """Events of different keys (``event.key``) never read or write the same rows, so
    applying them in another order across keys (each key's own events still in order)
    leaves the same tables. The runtime then cuts a batch into pieces by key rather
    than by position (:class:`~consumers.runtime.db_refusals.RefusalIsolator`)."""

    @abstractmethod
    def apply(self, connection: Connection, batch: Sequence[Envelope]) -> list[Rejection]:
        """Apply ``batch`` in order within the caller's transaction; return refusals.

        The runtime may call it several times per batch, on consecutive pieces, each in
        a savepoint that is rolled back when the database refuses it: keep no state
        between calls (load what is needed from the database each time), except rows
        as committed (:class:`CommittedRows`: taken out by a call, and remembered again
        only if that call succeeded, in a batch that then committed)."""

    def begin(self) -> None:  # noqa: B027 (by default nothing is remembered)
        """A batch's transaction begins: one or more :meth:`apply` calls follow, then
        :meth:`committed` when it committed, or :meth:`discard` when it did not."""

    def committed(self) -> None:  # noqa: B027 (by default nothing is remembered)
        """The transaction of the batch begun last committed."""

    def discard(self) -> None:  # noqa: B027 (by default nothing is remembered)
        """Forget whatever is remembered of the database's rows (they may have changed)."""


_Row = TypeVar("_Row")


class CommittedRows(Generic[_Row]):
    """Rows as committed in the database, by key, kept between batches (the way Kafka
    Streams keeps a state store beside its changelog), at most ``capacity`` of them
    (the least recently used go first).

    A row is taken OUT while a batch works on it (:meth:`take`) and put back only once
    that batch committed (:meth:`keep`), so whatever is here is what the database
    holds, as long as nobody else writes those rows: :meth:`clear` when that may have
    happened (another member had the partition, a transaction failed).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: dict[str, _Row] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def take(self, keys: Iterable[str]) -> dict[str, _Row]:
        """Remove and return the rows known for ``keys``."""
        rows = self._rows
        return {key: row for key in keys if (row := rows.pop(key, None)) is not None}

    def keep(self, rows: Iterable[tuple[str, _Row]]) -> None:
        """Remember committed ``rows`` (as the most recently used)."""
        kept = self._rows
        kept.update(rows)
        excess = len(kept) - self.capacity
        if excess > 0:
            for key in list(islice(kept, excess)):
                del kept[key]

    def clear(self) -> None:
        self._rows.clear()
