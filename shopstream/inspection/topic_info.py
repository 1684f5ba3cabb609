"""``inspect topics`` and ``inspect topic NAME``: sizes, offsets, timestamps, configs.

Message counts are end minus start offsets (on compacted or transactional topics an
upper bound). Size on disk would need the DescribeLogDirs admin call, which the
pinned confluent-kafka (2.16) does not offer, so no size is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from shopstream.config import Settings
from shopstream.inspection.cluster import DEFAULT_TIMEOUT_S, Cluster, PartitionMeta, wait_for
from shopstream.inspection.decode import format_millis, message_timestamp
from shopstream.inspection.reader import TopicReader


@dataclass(frozen=True, slots=True)
class TopicSummary:
    name: str
    partitions: int
    messages: int

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.name, "partitions": self.partitions, "messages": self.messages}


@dataclass(frozen=True, slots=True)
class PartitionDetail:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isrs: tuple[int, ...]
    start: int
    end: int
    first_timestamp_ms: int | None
    last_timestamp_ms: int | None

    @property
    def messages(self) -> int:
        return max(0, self.end - self.start)

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "leader": self.leader,
            "replicas": list(self.replicas),
            "isr": list(self.isrs),
            "start": self.start,
            "end": self.end,
            "messages": self.messages,
            "first_timestamp": format_millis(self.first_timestamp_ms),
            "last_timestamp": format_millis(self.last_timestamp_ms),
        }


@dataclass(frozen=True, slots=True)
class ConfigValue:
    name: str
    value: str | None
    source: str
    sensitive: bool

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source}


@dataclass(frozen=True, slots=True)
class TopicDetail:
    name: str
    partitions: tuple[PartitionDetail, ...]
    configs: tuple[ConfigValue, ...]

    @property
    def messages(self) -> int:
        return sum(part.messages for part in self.partitions)

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.name,
            "messages": self.messages,
            "partitions": [part.to_json() for part in self.partitions],
            "configs": {config.name: config.to_json() for config in self.configs},
        }


def list_topics(
    settings: Settings, *, include_internal: bool = False, timeout: float = DEFAULT_TIMEOUT_S
) -> list[TopicSummary]:
    """Every topic with its partition count and message count."""
    with Cluster(settings, timeout) as cluster:
        names = cluster.topic_names(include_internal)
        layout = {name: cluster.partitions(name) for name in names}
        keys = [(name, meta.partition) for name, metas in layout.items() for meta in metas]
        marks = cluster.watermarks(keys)
    return [
        TopicSummary(
            name=name,
            partitions=len(metas),
            messages=sum(marks[(name, meta.partition)].messages for meta in metas),
        )
        for name, metas in layout.items()
    ]


def describe_topic(
    settings: Settings, topic: str, *, timeout: float = DEFAULT_TIMEOUT_S
) -> TopicDetail:
    """Per-partition leader, offsets and first/last timestamps, and non-default configs."""
    with Cluster(settings, timeout) as cluster:
        topic = cluster.resolve_topic(topic)
        metas = cluster.partitions(topic)
        marks = cluster.watermarks((topic, meta.partition) for meta in metas)
        configs = topic_configs(cluster, topic)
    starts = {m.partition: marks[(topic, m.partition)].start for m in metas}
    ends = {m.partition: marks[(topic, m.partition)].end for m in metas}
    firsts, lasts = edge_timestamps(settings, topic, starts, ends, timeout)
    parts = tuple(_partition_detail(meta, starts, ends, firsts, lasts) for meta in metas)
    return TopicDetail(topic, parts, configs)


def _partition_detail(
    meta: PartitionMeta,
    starts: dict[int, int],
    ends: dict[int, int],
    firsts: dict[int, int | None],
    lasts: dict[int, int | None],
) -> PartitionDetail:
    pid = meta.partition
    return PartitionDetail(
        partition=pid,
        leader=meta.leader,
        replicas=meta.replicas,
        isrs=meta.isrs,
        start=starts[pid],
        end=ends[pid],
        first_timestamp_ms=firsts.get(pid),
        last_timestamp_ms=lasts.get(pid),
    )


def edge_timestamps(
    settings: Settings, topic: str, starts: dict[int, int], ends: dict[int, int], timeout: float
) -> tuple[dict[int, int | None], dict[int, int | None]]:
    """Timestamps of the first and the last message of each non-empty partition."""
    filled = [pid for pid in starts if ends[pid] > starts[pid]]
    with TopicReader(settings, timeout) as reader:
        first = reader.read_at(topic, {pid: starts[pid] for pid in filled})
        last = reader.read_at(topic, {pid: ends[pid] - 1 for pid in filled})
    return (
        {pid: message_timestamp(msg) for pid, msg in first.items()},
        {pid: message_timestamp(msg) for pid, msg in last.items()},
    )


def topic_configs(cluster: Cluster, topic: str) -> tuple[ConfigValue, ...]:
    """The topic's configs that are not the built-in defaults (with where they come from)."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    futures = cluster.admin.describe_configs([resource], request_timeout=cluster.timeout)
    entries: dict[str, Any] = {}
    for future in futures.values():
        entries.update(wait_for(future, cluster.timeout, f"describing configs of {topic}"))
    return tuple(
        _config_value(entry) for _, entry in sorted(entries.items()) if not entry.is_default
    )


def _config_value(entry: Any) -> ConfigValue:
    sensitive = bool(entry.is_sensitive)
    return ConfigValue(
        name=str(entry.name),
        value=None if sensitive else entry.value,
        source=_source_name(entry.source),
        sensitive=sensitive,
    )


def _source_name(source: Any) -> str:
    try:
        return ConfigSource(source).name.lower()
    except ValueError:
        return str(source)
