"""``inspect groups`` and ``inspect lag GROUP``: consumer groups, members, offsets, lag.

Only admin describe/list calls: nothing here joins a group or commits. ``lag`` adds,
for the project's groups (and any group with rows there), the next offsets stored in
the database's ``consumer_offsets`` table and whether they agree with Kafka's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions

from shopstream.config import Settings
from shopstream.errors import ConnectionFailed, UsageError
from shopstream.groups import PROJECT_GROUPS
from shopstream.inspection.cluster import DEFAULT_TIMEOUT_S, Cluster, wait_for
from shopstream.inspection.db_offsets import DbOffsets, read_db_offsets


@dataclass(frozen=True, slots=True)
class MemberInfo:
    member_id: str
    client_id: str
    host: str
    assignment: tuple[tuple[str, int], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "client_id": self.client_id,
            "host": self.host,
            "assignment": [{"topic": t, "partition": p} for t, p in self.assignment],
        }


@dataclass(frozen=True, slots=True)
class GroupInfo:
    group_id: str
    state: str
    group_type: str
    assignor: str
    members: tuple[MemberInfo, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group_id,
            "state": self.state,
            "type": self.group_type,
            "assignor": self.assignor,
            "members": [member.to_json() for member in self.members],
        }


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    db_offset: int | None = None

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(0, self.end - self.committed)

    def agrees(self) -> bool:
        """Kafka's and the database's next offsets match.

        No Kafka commit and a database offset of 0 agree: both read from the start.
        """
        if self.committed is None:
            return self.db_offset in (None, 0)
        return self.committed == self.db_offset

    def to_json(self, with_db: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "end": self.end,
            "lag": self.lag,
        }
        if with_db:
            out["db_offset"] = self.db_offset
            out["agrees"] = self.agrees()
        return out


@dataclass(frozen=True, slots=True)
class GroupLag:
    group_id: str
    state: str
    partitions: tuple[PartitionLag, ...]
    with_db: bool
    """True when the database's consumer_offsets were read (and are shown)."""
    db_note: str | None = None
    """Why database offsets are missing for a project group, if they are."""

    @property
    def total_lag(self) -> int:
        return sum(part.lag or 0 for part in self.partitions)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": self.group_id,
            "state": self.state,
            "total_lag": self.total_lag,
            "partitions": [part.to_json(self.with_db) for part in self.partitions],
        }
        if self.with_db:
            out["db_agrees"] = all(part.agrees() for part in self.partitions)
        return out


def list_groups(settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[GroupInfo]:
    """Every consumer group with its state and members."""
    with Cluster(settings, timeout) as cluster:
        cluster.metadata()
        listing = wait_for(
            cluster.admin.list_consumer_groups(request_timeout=timeout), timeout, "listing groups"
        )
        ids = sorted(group.group_id for group in listing.valid)
        return describe_groups(cluster, ids)


def describe_groups(cluster: Cluster, group_ids: list[str]) -> list[GroupInfo]:
    if not group_ids:
        return []
    futures = cluster.admin.describe_consumer_groups(group_ids, request_timeout=cluster.timeout)
    return [
        _group_info(wait_for(futures[gid], cluster.timeout, f"describing group {gid}"))
        for gid in group_ids
    ]


def _group_info(description: Any) -> GroupInfo:
    members = tuple(
        MemberInfo(
            member_id=str(member.member_id),
            client_id=str(member.client_id),
            host=str(member.host),
            assignment=_assignment(member.assignment),
        )
        for member in description.members
    )
    return GroupInfo(
        group_id=str(description.group_id),
        state=_enum_name(description.state),
        group_type=_enum_name(description.type),
        assignor=str(description.partition_assignor or ""),
        members=members,
    )


def _assignment(assignment: Any) -> tuple[tuple[str, int], ...]:
    partitions = getattr(assignment, "topic_partitions", None) or []
    return tuple(sorted((str(tp.topic), int(tp.partition)) for tp in partitions))


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value) or "UNKNOWN")


def group_names(settings: Settings, group_id: str) -> tuple[str, str]:
    """``(Kafka group id, project group id)`` of ``group_id`` under SHOPSTREAM_TOPIC_PREFIX.

    With a prefix, the project's groups are ``<prefix><group>`` in Kafka but stored
    under their own name in the database; either name may be given.
    """
    prefix = settings.shopstream_topic_prefix
    if prefix and group_id in PROJECT_GROUPS:
        return settings.kafka_group(group_id), group_id
    if prefix and group_id.startswith(prefix):
        return group_id, group_id.removeprefix(prefix)
    return group_id, group_id


def group_lag(settings: Settings, group_id: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> GroupLag:
    """Committed offset, end offset and lag of every partition ``group_id`` has offsets for."""
    kafka_group, project_group = group_names(settings, group_id)
    with Cluster(settings, timeout) as cluster:
        cluster.metadata()
        committed = committed_offsets(cluster, kafka_group)
        state = describe_groups(cluster, [kafka_group])[0].state
        db_offsets, note = _database_offsets(settings, project_group)
        if not committed and not db_offsets and state in {"DEAD", "UNKNOWN"}:
            raise UsageError(
                f"unknown consumer group {group_id!r} (list them with 'shopstream inspect groups')"
            )
        keys = sorted(set(committed) | set(db_offsets or {}))
        ends = cluster.watermarks(keys)
    partitions = tuple(
        PartitionLag(
            topic,
            pid,
            committed.get((topic, pid)),
            ends[(topic, pid)].end,
            (db_offsets or {}).get((topic, pid)),
        )
        for topic, pid in keys
    )
    return GroupLag(kafka_group, state, partitions, db_offsets is not None, note)


def committed_offsets(cluster: Cluster, group_id: str) -> dict[tuple[str, int], int]:
    """``(topic, partition) → committed offset`` of ``group_id`` (uncommitted ones left out)."""
    request = [ConsumerGroupTopicPartitions(group_id)]
    futures = cluster.admin.list_consumer_group_offsets(request, request_timeout=cluster.timeout)
    result = wait_for(futures[group_id], cluster.timeout, f"offsets of group {group_id}")
    return {
        (str(tp.topic), int(tp.partition)): int(tp.offset)
        for tp in result.topic_partitions or []
        if tp.offset >= 0
    }


def _database_offsets(settings: Settings, group_id: str) -> tuple[DbOffsets | None, str | None]:
    """The group's rows in consumer_offsets, or None (with a note for a project group)."""
    try:
        rows = read_db_offsets(settings.database_url, group_id)
    except ConnectionFailed as exc:
        return None, exc.message if group_id in PROJECT_GROUPS else None
    if rows is None:
        return None, None
    if not rows and group_id not in PROJECT_GROUPS:
        return None, None
    return rows, None
