"""Read a topic's messages without a consumer group: assign, poll, stop at the end.

:class:`TopicReader` owns one assign-only consumer (:func:`shopstream.kafka.clients.make_reader`):
it never subscribes, so it never joins a group, and it never commits. It resolves
where to start in each partition from an :mod:`offset spec <shopstream.inspection.offset_spec>`
and yields raw messages until every partition it had something to read in reports
end-of-partition, or, when following, until the ``stop`` event is set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from shopstream.config import Settings
from shopstream.errors import ConnectionFailed, ShopstreamError
from shopstream.inspection.cluster import DEFAULT_TIMEOUT_S, Watermarks
from shopstream.inspection.offset_spec import AtTime, OffsetSpec, resolve_offset
from shopstream.kafka.clients import make_reader
from shopstream.kafka.errors import describe_kafka_error
from shopstream.kafka.offsets import coordinates

POLL_INTERVAL_S = 0.1
BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Where to start in each partition and where its end was when the read began."""

    topic: str
    starts: Mapping[int, int]
    ends: Mapping[int, int]

    def describe(self) -> str:
        """``topic [p0@12, p1@40]``: where the read starts."""
        starts = ", ".join(f"p{pid}@{offset}" for pid, offset in sorted(self.starts.items()))
        return f"{self.topic} [{starts}]"

    def pending(self) -> set[int]:
        """Partitions with something to read before their end."""
        return {pid for pid, start in self.starts.items() if start < self.ends[pid]}


class TopicReader:
    """An assign-only consumer; use as a context manager (it closes the consumer)."""

    def __init__(
        self, settings: Settings, timeout: float = DEFAULT_TIMEOUT_S, **overrides: Any
    ) -> None:
        self.timeout = timeout
        self._consumer: Consumer = make_reader(settings, **overrides)
        self._closed = False

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def load_metadata(self) -> None:
        """Fetch every topic's metadata now. A consumer asks for a topic's metadata when
        it is first assigned, and waits up to a second for it; a reader about to read
        partitions of several topics one after the other saves that wait each time."""
        try:
            self._consumer.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise ConnectionFailed(
                f"metadata request failed: {describe_kafka_error(exc)}"
            ) from None

    # -- where to start -------------------------------------------------------

    def plan(self, topic: str, spec: OffsetSpec, marks: Mapping[int, Watermarks]) -> ReadPlan:
        """Resolve ``spec`` in every partition of ``marks`` (time specs ask the broker)."""
        if isinstance(spec, AtTime):
            starts = self._offsets_for_time(topic, spec.timestamp_ms, marks)
        else:
            starts = {pid: resolve_offset(spec, m.start, m.end) for pid, m in marks.items()}
        return ReadPlan(topic, starts, {pid: m.end for pid, m in marks.items()})

    def _offsets_for_time(
        self, topic: str, timestamp_ms: int, marks: Mapping[int, Watermarks]
    ) -> dict[int, int]:
        query = [TopicPartition(topic, pid, timestamp_ms) for pid in marks]
        try:
            found = self._consumer.offsets_for_times(query, timeout=self.timeout)
        except KafkaException as exc:
            raise ShopstreamError(
                f"looking up offsets by time failed: {describe_kafka_error(exc)}"
            ) from None
        starts: dict[int, int] = {}
        for tp in found:
            mark = marks[tp.partition]
            # -1: no message at or after the time; start at the end.
            starts[tp.partition] = mark.end if tp.offset < 0 else max(mark.start, tp.offset)
        return starts

    # -- reading ----------------------------------------------------------------

    def messages(
        self, plan: ReadPlan, *, follow: bool = False, stop: threading.Event | None = None
    ) -> Generator[Message, None, None]:
        """Messages from ``plan``'s starts, until every pending partition hits its end.

        With ``follow`` the read goes on past the end until ``stop`` is set.
        """
        stop = stop or threading.Event()
        pending = plan.pending()
        if not follow and not pending:
            return
        self._consumer.assign(
            [TopicPartition(plan.topic, pid, offset) for pid, offset in plan.starts.items()]
        )
        try:
            yield from self._poll_until_done(plan.topic, pending, follow, stop)
        finally:
            self._consumer.unassign()

    def _poll_until_done(
        self, topic: str, pending: set[int], follow: bool, stop: threading.Event
    ) -> Generator[Message, None, None]:
        last_progress = time.monotonic()
        while not stop.is_set() and (follow or pending):
            batch = self._consumer.consume(BATCH_SIZE, timeout=POLL_INTERVAL_S)
            if batch:
                last_progress = time.monotonic()
            elif not follow and time.monotonic() - last_progress > self.timeout:
                raise ConnectionFailed(
                    f"no data from the broker for {self.timeout:g}s while reading {topic!r}"
                )
            for message in batch:
                if _is_end_of_partition(message):
                    pending.discard(message.partition() or 0)
                    continue
                _raise_if_fatal(message)
                if message.error() is None:
                    yield message

    def read_at(self, topic: str, offsets: Mapping[int, int]) -> dict[int, Message]:
        """The message at each ``partition → offset`` (missing if none is there)."""
        plan = ReadPlan(topic, offsets, {pid: offset + 1 for pid, offset in offsets.items()})
        found: dict[int, Message] = {}
        with closing(self.messages(plan)) as stream:
            for message in stream:
                found.setdefault(coordinates(message)[1], message)
                if len(found) == len(offsets):
                    break
        return found


def _is_end_of_partition(message: Message) -> bool:
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF


def _raise_if_fatal(message: Message) -> None:
    error: Any = message.error()
    if error is None:
        return
    if error.fatal() or error.code() in _TOPIC_GONE:
        raise ShopstreamError(f"reading {message.topic()!r} failed: {error.str()}")


_TOPIC_GONE = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION})
