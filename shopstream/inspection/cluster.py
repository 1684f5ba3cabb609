"""Admin-client look-ups shared by the inspect commands: topics, partitions, watermarks.

Topic existence is always checked against the full metadata (``list_topics()`` with
no topic), never by asking for one topic by name: a metadata request naming a
missing topic can make a broker with ``auto.create.topics.enable`` create it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import OffsetSpec as KafkaOffsetSpec  # type: ignore[attr-defined]

from shopstream.config import Settings
from shopstream.errors import ConnectionFailed, ShopstreamError, UsageError
from shopstream.kafka.clients import make_admin
from shopstream.kafka.errors import describe_kafka_error

DEFAULT_TIMEOUT_S = 10.0
INTERNAL_PREFIXES = ("_", "kafkasql-")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Watermarks:
    """A partition's first offset still on the broker and its end (next offset)."""

    start: int
    end: int

    @property
    def messages(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class PartitionMeta:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isrs: tuple[int, ...]


def is_internal(topic: str) -> bool:
    return topic.startswith(INTERNAL_PREFIXES)


def wait_for(future: Future[T], timeout: float, what: str) -> T:
    """The result of an admin future, or a one-line ShopstreamError."""
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        raise ShopstreamError(f"{what} failed: {describe_kafka_error(exc)}") from None
    except TimeoutError:
        raise ConnectionFailed(f"{what}: no answer from the broker in {timeout:g}s") from None


class Cluster:
    """One admin client and the metadata it has fetched; close() when done."""

    def __init__(self, settings: Settings, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout = timeout
        self._admin: AdminClient = make_admin(settings)
        self._metadata: Any = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Admin clients hold no group or broker-side state; drop our reference."""
        self._metadata = None

    @property
    def admin(self) -> AdminClient:
        return self._admin

    def metadata(self) -> Any:
        """Cluster metadata (fetched once); ConnectionFailed if the broker is unreachable."""
        if self._metadata is None:
            try:
                self._metadata = self._admin.list_topics(timeout=self.timeout)
            except KafkaException as exc:
                raise ConnectionFailed(
                    f"Kafka broker unreachable at {self.settings.kafka_bootstrap_servers} "
                    f"({describe_kafka_error(exc)}); set KAFKA_BOOTSTRAP_SERVERS or "
                    "start it with 'shopstream stack up'"
                ) from None
        return self._metadata

    def topic_names(self, include_internal: bool = False) -> list[str]:
        names = self.metadata().topics
        return sorted(name for name in names if include_internal or not is_internal(name))

    def resolve_topic(self, name: str) -> str:
        """``name`` if it exists, else ``SHOPSTREAM_TOPIC_PREFIX`` + ``name`` if that does."""
        topics = self.metadata().topics
        if name not in topics and self.settings.topic(name) in topics:
            return self.settings.topic(name)
        self.partitions(name)
        return name

    def partitions(self, topic: str) -> list[PartitionMeta]:
        """Partitions of ``topic``; UsageError naming the command to list topics if unknown."""
        found = self.metadata().topics.get(topic)
        if found is None or found.error is not None:
            raise UsageError(
                f"unknown topic {topic!r} (list them with 'shopstream inspect topics')"
            )
        return [
            PartitionMeta(pid, part.leader, tuple(part.replicas), tuple(part.isrs))
            for pid, part in sorted(found.partitions.items())
        ]

    def partition_ids(self, topic: str, wanted: Iterable[int] | None = None) -> list[int]:
        """All partition ids of ``topic``, or the ``wanted`` ones after checking they exist."""
        known = [meta.partition for meta in self.partitions(topic)]
        if wanted is None:
            return known
        chosen = sorted(set(wanted))
        missing = [pid for pid in chosen if pid not in known]
        if missing:
            raise UsageError(
                f"topic {topic!r} has no partition {missing[0]} (partitions 0..{len(known) - 1})"
            )
        return chosen

    def watermarks(
        self, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], Watermarks]:
        """Start and end offsets of many partitions in two batched ListOffsets requests."""
        keys = list(partitions)
        if not keys:
            return {}
        starts = self._list_offsets(keys, KafkaOffsetSpec.earliest())  # type: ignore[no-untyped-call]
        ends = self._list_offsets(keys, KafkaOffsetSpec.latest())  # type: ignore[no-untyped-call]
        return {key: Watermarks(starts[key], ends[key]) for key in keys}

    def _list_offsets(self, keys: list[tuple[str, int]], spec: Any) -> dict[tuple[str, int], int]:
        request = {TopicPartition(topic, pid): spec for topic, pid in keys}
        futures: Mapping[TopicPartition, Future[Any]] = self._admin.list_offsets(
            request, request_timeout=self.timeout
        )
        return {
            (tp.topic, tp.partition): int(wait_for(future, self.timeout, "listing offsets").offset)
            for tp, future in futures.items()
        }
