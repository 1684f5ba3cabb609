"""The consumer process's garbage collector settings (consumers.runtime.gc_tuning)."""

from __future__ import annotations

import gc

from consumers.runtime.gc_tuning import YOUNG_THRESHOLD, tuned_garbage_collector


def test_freezes_and_raises_thresholds_inside_then_restores() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with tuned_garbage_collector():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # cycles are still collected
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def _is_frozen(obj: object) -> bool:
    """Frozen objects sit in the permanent generation, which get_objects() leaves out.
    (Counting them is no test: threads left by other tests free frozen objects.)"""
    return not any(o is obj for o in gc.get_objects())


def test_nested_use_leaves_the_collector_to_the_outer_one() -> None:
    with tuned_garbage_collector():
        made_before_inner = ["not frozen by the outer block"]
        assert not _is_frozen(made_before_inner)
        with tuned_garbage_collector():
            assert not _is_frozen(made_before_inner)  # the inner block did not freeze again
        assert gc.get_freeze_count() > 0  # the inner block did not unfreeze
        assert not _is_frozen(made_before_inner)
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0


def test_restores_when_the_block_raises() -> None:
    before = gc.get_threshold()
    try:
        with tuned_garbage_collector():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_made_inside_are_still_collected() -> None:
    class Node:
        other: object = None

    with tuned_garbage_collector():
        first, second = Node(), Node()
        first.other, second.other = second, first
        del first, second
        assert gc.collect() >= 2
