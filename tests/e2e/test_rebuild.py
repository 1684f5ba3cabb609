"""`shopstream consume rebuild GROUP`: refuses while the group runs; otherwise empties
that group's tables, offsets and processed ids, replays its topic and ends with tables
identical to before (and to the reference), leaving every other group untouched."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from consumers.projections import projection_for
from consumers.runtime.offset_store import offsets_table, processed_table
from consumers.runtime.rebuild import group_activity
from tests.e2e.test_projections import Daemon, Pipeline, pipeline, simulated
from tests.support.reference import GROUPS, dump_group

__all__ = ["pipeline"]  # the fixture, imported for these tests

pytestmark = [pytest.mark.e2e]

#: a counter column of each group's parent table, to put a wrong value in
WRONG_COUNT = {"orders": "events_applied", "carts": "item_count", "customer_stats": "orders_placed"}


def runtime_rows(pipeline: Pipeline, group: str) -> tuple[list[tuple[object, ...]], int]:
    """The group's stored offsets and how many processed event ids it has."""
    with pipeline.engine.connect() as connection:
        offsets = connection.execute(
            select(offsets_table.c.topic, offsets_table.c.partition, offsets_table.c.next_offset)
            .where(offsets_table.c.group_id == group)
            .order_by(offsets_table.c.topic, offsets_table.c.partition)
        ).all()
        processed = connection.execute(
            select(processed_table.c.event_id).where(processed_table.c.group_id == group)
        ).all()
    return [tuple(row) for row in offsets], len(processed)


def wait_for_members(pipeline: Pipeline, group: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while group_activity(pipeline.settings, group).members == 0:
        assert time.monotonic() < deadline, f"{group} never showed a live member"
        time.sleep(0.3)


def corrupt(pipeline: Pipeline, group: str) -> None:
    """What a bug in a projection's logic might leave behind: rows lost, values wrong."""
    tables = projection_for(group).tables
    child, parent = tables[0], tables[-1]
    with pipeline.engine.begin() as connection:
        connection.execute(child.delete())
        connection.execute(update(parent).values({WRONG_COUNT[parent.name]: 12345}))


def test_rebuild_refuses_while_a_daemon_of_the_group_runs(pipeline: Pipeline) -> None:
    pipeline.produce(simulated(orders=50, seed=21))
    daemon = pipeline.start_daemon("cart-projection")
    try:
        pipeline.wait_caught_up(["cart-projection"])
        wait_for_members(pipeline, "cart-projection")
        before = dump_group(pipeline.engine, "cart-projection")
        runtime_before = runtime_rows(pipeline, "cart-projection")

        refused = pipeline.cli("consume", "rebuild", "cart-projection")

        assert refused.returncode != 0
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert lines[0].startswith("error: refusing to rebuild cart-projection"), lines
        assert "live member" in lines[0]
        assert dump_group(pipeline.engine, "cart-projection") == before
        assert runtime_rows(pipeline, "cart-projection") == runtime_before
        assert daemon.running()
    finally:
        assert daemon.stop() == 0, daemon.output()

    # stopped (group Empty): the rebuild goes through and ends where the daemon was
    rebuilt = pipeline.cli("consume", "rebuild", "cart-projection")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuilt cart-projection" in rebuilt.stdout
    assert dump_group(pipeline.engine, "cart-projection") == before
    pipeline.assert_matches_reference("cart-projection")

    # a group that never ran (no Kafka group at all) is built from scratch
    fresh = pipeline.cli("consume", "rebuild", "sales-projection")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    pipeline.assert_matches_reference("sales-projection")

    unknown = pipeline.cli("consume", "rebuild", "no-such-group")
    assert unknown.returncode == 2
    assert "unknown group" in unknown.stderr


def test_each_group_is_rebuilt_without_touching_the_others(pipeline: Pipeline) -> None:
    events = simulated(orders=150, seed=8)
    pipeline.produce(events)
    daemons: dict[str, Daemon] = {group: pipeline.start_daemon(group) for group in GROUPS}
    try:
        pipeline.wait_caught_up(GROUPS)
        before = pipeline.dump_all()
        runtime_before = {group: runtime_rows(pipeline, group) for group in GROUPS}

        for group in GROUPS:
            assert daemons[group].stop() == 0, daemons[group].output()
            corrupt(pipeline, group)
            assert pipeline.dump_all() != before

            rebuilt = pipeline.cli("consume", "rebuild", group)

            assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
            assert pipeline.dump_all() == before, f"after rebuilding {group}"
            for other in GROUPS:
                assert runtime_rows(pipeline, other) == runtime_before[other], other
                if other != group:
                    assert daemons[other].running(), daemons[other].output()
            daemons[group] = pipeline.start_daemon(group)

        # the restarted daemons go on from the rebuilt offsets
        pipeline.produce(simulated(orders=40, seed=9))
        pipeline.wait_caught_up(GROUPS)
        for group in GROUPS:
            pipeline.assert_matches_reference(group)
    finally:
        for daemon in daemons.values():
            daemon.kill()
