"""How :class:`~consumers.runtime.db_refusals.RefusalIsolator` cuts a batch into pieces
while refusals are recent (pure: no database)."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from consumers.projections.base import Envelope
from consumers.runtime.db_refusals import _pieces, _pieces_by_key
from shopstream.events import OrderConfirmed


def batch(keys: list[int]) -> list[Envelope]:
    return [
        Envelope(OrderConfirmed(order_id=f"o-{key}"), "t", 0, offset)
        for offset, key in enumerate(keys)
    ]


@given(st.lists(st.integers(0, 30), max_size=200), st.integers(1, 8))
def test_pieces_by_key_hold_every_event_once_each_key_in_one_piece_in_order(
    keys: list[int], count: int
) -> None:
    events = batch(keys)
    pieces = _pieces_by_key(events, count)
    assert len(pieces) <= count and all(pieces)
    assert sorted(env.offset for piece in pieces for env in piece) == list(range(len(keys)))
    owners = {env.event.key: index for index, piece in enumerate(pieces) for env in piece}
    assert all(
        owners[env.event.key] == index for index, piece in enumerate(pieces) for env in piece
    )
    assert all(
        [env.offset for env in piece] == sorted(env.offset for env in piece) for piece in pieces
    )


def test_pieces_by_position_are_consecutive_and_even() -> None:
    events = batch(list(range(10)))
    assert [[env.offset for env in piece] for piece in _pieces(events, 3)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]


def test_an_order_created_and_paid_in_one_batch_lands_in_one_piece() -> None:
    """The point of cutting by key: no row is inserted by one piece and updated by
    another (cut by position, these two events fall in different pieces)."""
    events = batch([1, 2, 3, 4, 1])
    by_position = _pieces(events, 2)
    assert {env.event.key for env in by_position[0]} & {env.event.key for env in by_position[1]}
    by_key = [{env.event.key for env in piece} for piece in _pieces_by_key(events, 2)]
    assert all(a.isdisjoint(b) for a, b in combinations(by_key, 2))
