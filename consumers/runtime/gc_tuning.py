"""The garbage collector set for a streaming consumer process.

A consumer allocates and frees several container objects per event (decoded records,
envelopes, row dicts). Reference counting frees nearly all of them; CPython's cyclic
collector would still run a young collection every 700 allocations and, now and then,
a full one that walks every object in the process, including the tens of thousands
SQLAlchemy, confluent-kafka and fastavro built at import time. Measured on
``bench/materialize.py`` (order-state into SQLite, median of three): 18,440 → 22,750
events/s, 59 → 48 µs of CPU per event.

:func:`tuned_garbage_collector` freezes what exists at start-up (moved to a permanent
generation the collector no longer walks) and makes young collections rarer. Cycles
are still collected. Leaving the block restores the previous thresholds and unfreezes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000
"""Allocations between young collections (CPython's default is 700)."""
OLDER_THRESHOLD = 20
"""Young (then middle) collections between collections of the next generation (10)."""


@contextmanager
def tuned_garbage_collector() -> Iterator[None]:
    """Freeze the start-up objects and collect less often, for the ``with`` block.

    Nested or concurrent uses leave the collector to the outermost one: when objects
    are already frozen, this changes nothing.
    """
    if gc.get_freeze_count() > 0:
        yield
        return
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
