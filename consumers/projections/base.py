"""The contract between the consumer runtime and a projection.

The runtime polls a batch, decodes it, drops events already processed, and hands the
rest to :meth:`Projection.apply` inside the database transaction that also stores the
group's next offsets. The projection applies the events in order and returns the ones
it refuses (with a reason) instead of raising; those are dead-lettered and change no
state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

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

    @abstractmethod
    def apply(self, connection: Connection, batch: Sequence[Envelope]) -> list[Rejection]:
        """Apply ``batch`` in order within the caller's transaction; return refusals.

        The runtime may call it several times per batch, on consecutive pieces, each in
        a savepoint that is rolled back when the database refuses it: keep no state
        between calls (load what is needed from the database each time)."""
