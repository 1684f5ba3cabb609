"""The runtime's bookkeeping tables: offsets compare-and-set and processed event ids."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from consumers.runtime.offset_store import (
    OffsetConflict,
    OffsetStore,
    ProcessedEvents,
    processed_table,
)
from shopstream.db.bulk import insert_rows

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

T = "order-events"


def test_offsets_start_at_zero_and_move_by_compare_and_set(engine: Engine) -> None:
    store = OffsetStore("order-state", T)
    with engine.begin() as connection:
        assert store.load(connection, [(T, 0), (T, 1)]) == {(T, 0): 0, (T, 1): 0}
    with engine.begin() as connection:
        store.advance(connection, {(T, 0): (0, 40), (T, 1): (0, 7)})
    with engine.begin() as connection:
        store.advance(connection, {(T, 1): (7, 9)})
    with engine.connect() as connection:
        assert store.load_all(connection) == {(T, 0): 40, (T, 1): 9}


def test_a_stale_expected_offset_moves_nothing(engine: Engine) -> None:
    """A zombie that lost partition 1 to another member cannot commit over it, and
    its move of partition 0 (still at the expected offset) is rolled back with it."""
    store = OffsetStore("order-state", T)
    with engine.begin() as connection:
        store.load(connection, [(T, 0), (T, 1)])
        store.advance(connection, {(T, 0): (0, 10), (T, 1): (0, 10)})
    with pytest.raises(OffsetConflict, match=r"order-events\[1\]@3"), engine.begin() as connection:
        store.advance(connection, {(T, 0): (10, 20), (T, 1): (3, 20)})
    with engine.connect() as connection:
        assert store.load_all(connection) == {(T, 0): 10, (T, 1): 10}


def test_groups_keep_their_own_offsets(engine: Engine) -> None:
    ours, theirs = OffsetStore("order-state", T), OffsetStore("sales-projection", T)
    with engine.begin() as connection:
        ours.load(connection, [(T, 0)])
        theirs.load(connection, [(T, 0)])
        ours.advance(connection, {(T, 0): (0, 5)})
    with engine.connect() as connection:
        assert (ours.load_all(connection), theirs.load_all(connection)) == (
            {(T, 0): 5},
            {(T, 0): 0},
        )


def test_claim_returns_only_ids_never_processed(engine: Engine) -> None:
    processed = ProcessedEvents("order-state", T)
    with engine.begin() as connection:
        assert processed.claim(connection, ["a", "b", "a"]) == {"a", "b"}
    with engine.begin() as connection:
        assert processed.claim(connection, ["b", "c"]) == {"c"}
        processed.mark_dead_lettered(connection, ["c"])
    with engine.begin() as connection:
        assert processed.claim(connection, ["c", "d"]) == {"d"}
        assert ProcessedEvents("sales-projection", T).claim(connection, ["a"]) == {"a"}
        assert processed.seen(connection, ["a", "c", "e"]) == {"a", "c"}


def test_bulk_writes_raise_sqlalchemy_errors(engine: Engine) -> None:
    """COPY (PostgreSQL) and multi-row inserts (SQLite) fail like any other statement,
    so the runtime can tell a database outage (OperationalError) from a bug."""
    processed = ProcessedEvents("order-state", T)
    with engine.begin() as connection:
        processed.claim(connection, ["a"])
    row = {"group_id": "order-state", "topic": T, "event_id": "a", "outcome": "applied"}
    with pytest.raises(IntegrityError), engine.begin() as connection:
        insert_rows(connection, processed_table, [row])


def test_two_topic_prefixes_keep_their_own_offsets_and_processed_ids(engine: Engine) -> None:
    """Two SHOPSTREAM_TOPIC_PREFIXes in one database: the same event id is new to each,
    and resetting one leaves the other's offsets and ids alone."""
    offsets_a, offsets_b = (
        OffsetStore("order-state", "a.order-events"),
        OffsetStore("order-state", "b.order-events"),
    )
    ids_a = ProcessedEvents("order-state", "a.order-events")
    ids_b = ProcessedEvents("order-state", "b.order-events")
    with engine.begin() as connection:
        offsets_a.load(connection, [("a.order-events", 0)])
        offsets_b.load(connection, [("b.order-events", 0)])
        offsets_a.advance(connection, {("a.order-events", 0): (0, 3)})
        assert ids_a.claim(connection, ["x", "y"]) == {"x", "y"}
        assert ids_b.claim(connection, ["x"]) == {"x"}
    with engine.begin() as connection:
        assert offsets_b.other_topics(connection) == ["a.order-events"]
        offsets_b.reset(connection)
        ids_b.reset(connection)
    with engine.connect() as connection:
        assert offsets_a.load_all(connection) == {("a.order-events", 0): 3}
        assert offsets_b.load_all(connection) == {}
        assert ids_a.seen(connection, ["x", "y"]) == {"x", "y"}
        assert ids_b.seen(connection, ["x", "y"]) == set()
