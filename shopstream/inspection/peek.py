"""``inspect peek`` / ``tail``: decoded events of one topic from an offset spec on.

:func:`peek` is a generator that owns its clients: close it (or exhaust it) and the
reader consumer is closed. It yields :class:`InspectedMessage` in the order the
broker delivers them (in offset order within each partition).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass

from shopstream.config import Settings
from shopstream.errors import UsageError
from shopstream.events import EVENT_TYPES
from shopstream.inspection.cluster import DEFAULT_TIMEOUT_S, Cluster, Watermarks
from shopstream.inspection.decode import InspectedMessage, MessageDecoder
from shopstream.inspection.offset_spec import OffsetSpec
from shopstream.inspection.reader import ReadPlan, TopicReader
from shopstream.registry.admin import check_registry
from shopstream.registry.lookup import SubjectResolver
from shopstream.serde import EventDeserializer, make_registry_client


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Which messages to show: by key and/or event type (None matches everything)."""

    key: str | None = None
    event_type: str | None = None

    def __post_init__(self) -> None:
        if self.event_type is not None and self.event_type not in EVENT_TYPES:
            known = ", ".join(EVENT_TYPES)
            raise UsageError(f"unknown event type {self.event_type!r} (one of: {known})")

    def matches(self, message: InspectedMessage) -> bool:
        if self.key is not None and message.key != self.key:
            return False
        return self.event_type is None or message.event_type == self.event_type


@dataclass(frozen=True, slots=True)
class PeekRequest:
    topic: str
    start: OffsetSpec
    partitions: tuple[int, ...] | None = None
    count: int | None = None
    """Stop after this many shown messages (None: no limit)."""
    follow: bool = False
    only: MessageFilter = MessageFilter()


def make_decoder(settings: Settings) -> MessageDecoder:
    check_registry(settings)
    registry = make_registry_client(settings.registry_config())
    return MessageDecoder(EventDeserializer(registry), SubjectResolver(registry))


def partition_marks(
    cluster: Cluster, topic: str, wanted: tuple[int, ...] | None
) -> dict[int, Watermarks]:
    """Watermarks of the chosen partitions of ``topic`` (all when ``wanted`` is None)."""
    pids = cluster.partition_ids(topic, wanted)
    marks = cluster.watermarks((topic, pid) for pid in pids)
    return {pid: marks[(topic, pid)] for pid in pids}


def peek(
    settings: Settings,
    request: PeekRequest,
    *,
    stop: threading.Event | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    on_start: Callable[[ReadPlan], None] | None = None,
) -> Generator[InspectedMessage, None, None]:
    """Decoded messages of ``request.topic``; stops at the end unless following.

    ``on_start`` is called once the start offsets are fixed: anything produced after
    it returns is read (when following).
    """
    if request.count is not None and request.count <= 0:
        return
    with Cluster(settings, timeout) as cluster:
        topic = cluster.resolve_topic(request.topic)
        marks = partition_marks(cluster, topic, request.partitions)
    decoder = make_decoder(settings)
    shown = 0
    with TopicReader(settings, timeout) as reader:
        plan = reader.plan(topic, request.start, marks)
        if on_start is not None:
            on_start(plan)
        for message in reader.messages(plan, follow=request.follow, stop=stop):
            inspected = decoder.inspect(message)
            if not request.only.matches(inspected):
                continue
            yield inspected
            shown += 1
            if request.count is not None and shown >= request.count:
                return
