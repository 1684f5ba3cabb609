"""shopstream/groups.py (the groups, their topics and tables) and the projections
(consumers/projections: group → class) name the same groups, topics and tables."""

from __future__ import annotations

from consumers.projections import GROUPS, projection_for
from shopstream.groups import GROUP_SPECS, PROJECT_GROUPS


def test_every_group_has_one_projection_and_no_projection_is_unlisted() -> None:
    assert list(GROUPS) == list(GROUP_SPECS) == list(PROJECT_GROUPS)


def test_each_projection_reads_the_listed_topic_and_writes_the_listed_tables() -> None:
    for name, spec in GROUP_SPECS.items():
        projection = projection_for(name)
        assert projection.group_id == spec.name
        assert projection.topic == spec.topic
        assert tuple(table.name for table in projection.tables) == spec.tables


def test_no_two_groups_write_the_same_table() -> None:
    tables = [table for spec in GROUP_SPECS.values() for table in spec.tables]
    assert len(tables) == len(set(tables))
