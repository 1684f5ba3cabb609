"""``inspect order ID``: one order's story across its topics, their DLQs and the database.

Where to look. Events are keyed by aggregate id and the producers keep librdkafka's
default partitioner, ``consistent_random``: a non-empty key goes to
``crc32(key) % partitions`` (the zlib CRC-32, not Java's murmur2). So one order's
events are all in partition :func:`partition_for_key` of ``order-events``, and its
dead letters (written with the original key, by the same partitioner) in that of
``order-events.dlq``. The order's cart comes from its ``OrderCreated`` (``cart_id``)
or its database row, and the cart's events are found the same way in ``cart-events``
and ``cart-events.dlq``. Four partitions are read, never every partition of a topic;
``window`` bounds each read to the last N offsets of its partition.

What the database says. ``orders`` holds the row (``events_applied`` counts the
events the ``order-state`` group applied to it), ``order_status_history`` the id of
every event that changed it (so the last one names the event, and through the topic
the offset, that last changed the row), ``processed_events`` what each group did
with each event id (applied or dead-lettered) and ``consumer_offsets`` how far each
group got in each partition. Every event is shown with, per group that reads its
topic, ``applied``, ``dead-lettered``, ``pending`` (at or past the group's offset)
or ``missing`` (before the group's offset yet never recorded); the places where the
topics and the database disagree are listed as findings.
"""

from __future__ import annotations

import heapq
import time
import zlib
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.exc import SQLAlchemyError

from schemas import CART_TOPIC, DLQ_SUFFIX, ORDER_TOPIC, dlq_topic
from shopstream.config import Settings
from shopstream.db.engine import describe_db_error
from shopstream.db.models import Cart, ConsumerOffset, Order, OrderStatusHistory, ProcessedEvent
from shopstream.domain.order import TRANSITIONS, OrderStatus
from shopstream.errors import ConnectionFailed, ShopstreamError, UsageError
from shopstream.groups import GROUP_SPECS, ORDER_STATE
from shopstream.inspection.cluster import DEFAULT_TIMEOUT_S, Cluster, Watermarks
from shopstream.inspection.db_offsets import read_only_engine
from shopstream.inspection.decode import InspectedMessage, MessageDecoder
from shopstream.inspection.dlq_reader import DeadLetter
from shopstream.inspection.peek import make_decoder
from shopstream.inspection.reader import ReadPlan, TopicReader

GROUPS_BY_TOPIC: Mapping[str, tuple[str, ...]] = {
    topic: tuple(spec.name for spec in GROUP_SPECS.values() if spec.topic == topic)
    for topic in (ORDER_TOPIC, CART_TOPIC)
}
"""The project's groups that read each topic (their ids in the database)."""
ORDER_STATE_GROUP = ORDER_STATE.name
FETCH_WAIT_MS = 10
"""A read stops at the end of a partition it was told about; the broker's default
wait for more data (500 ms) would only delay that end (measured 0.5 s → 0.05 s)."""

APPLIED = "applied"
DEAD_LETTERED = "dead-lettered"
PENDING = "pending"
MISSING = "missing"

orders_table: Table = Order.__table__  # type: ignore[assignment]
history_table: Table = OrderStatusHistory.__table__  # type: ignore[assignment]
carts_table: Table = Cart.__table__  # type: ignore[assignment]
processed_table: Table = ProcessedEvent.__table__  # type: ignore[assignment]
offsets_table: Table = ConsumerOffset.__table__  # type: ignore[assignment]


class UnknownOrder(ShopstreamError):
    """No event keyed by the order id in its partition and no row in ``orders``."""

    exit_code = 2


def partition_for_key(key: str | bytes, partitions: int) -> int:
    """The partition librdkafka's default ``consistent_random`` partitioner picks for a
    non-empty key: ``crc32(key) % partitions``."""
    data = key.encode() if isinstance(key, str) else key
    if not data:
        raise UsageError("an empty key has no partition (the producer picks one at random)")
    if partitions <= 0:
        raise ValueError("a topic has at least one partition")
    return zlib.crc32(data) % partitions


# -- what was read ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionRead:
    """One partition read for one key: where, how much, how long."""

    topic: str
    partition: int
    key: str
    start: int
    end: int
    low_watermark: int
    found: int
    seconds: float

    @property
    def complete(self) -> bool:
        """The read started at the partition's first offset (nothing older was skipped)."""
        return self.start <= self.low_watermark

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "key": self.key,
            "from": self.start,
            "to": self.end,
            "messages_read": max(0, self.end - self.start),
            "complete": self.complete,
            "found": self.found,
            "seconds": round(self.seconds, 4),
        }


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One message about the order: an event on its topic or a dead letter."""

    message: InspectedMessage
    kind: str
    """``event`` or ``dead-letter``."""
    groups: Mapping[str, str] = field(default_factory=dict)
    """Per group reading the topic: applied, dead-lettered, pending or missing."""
    dead_letter: DeadLetter | None = None

    @property
    def event_id(self) -> str | None:
        if self.dead_letter is not None:
            return self.dead_letter.event_id
        value = (self.message.event or {}).get("event_id")
        return value if isinstance(value, str) else None

    @property
    def coordinates(self) -> str:
        m = self.message
        return f"{m.topic}:{m.partition}@{m.offset}"

    def to_json(self) -> dict[str, Any]:
        m = self.message
        out: dict[str, Any] = {
            "kind": self.kind,
            "topic": m.topic,
            "partition": m.partition,
            "offset": m.offset,
            "timestamp": m.timestamp,
            "timestamp_ms": m.timestamp_ms,
            "key": m.key,
            "event_type": m.event_type,
            "event_id": self.event_id,
            "event": m.event,
            "groups": dict(self.groups),
        }
        if m.problem is not None:
            out["decode_error"] = {"reason": m.problem.reason, "detail": m.problem.detail}
            out["raw"] = m.raw_hex
        if self.dead_letter is not None:
            letter = self.dead_letter
            out["dead_letter"] = {
                "reason": letter.reason,
                "error": letter.error,
                "group": letter.group,
                "original": {
                    "topic": letter.original_topic,
                    "partition": letter.original_partition,
                    "offset": letter.original_offset,
                },
            }
        return out


@dataclass(frozen=True, slots=True)
class LastChange:
    """The event that last changed the ``orders`` row, and where it is in the topic."""

    event_id: str
    event_type: str
    to_status: str
    topic: str | None
    partition: int | None
    offset: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "to_status": self.to_status,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
        }


@dataclass(frozen=True, slots=True)
class DatabaseView:
    """What the read models hold about the order (None parts: not there)."""

    order: dict[str, Any] | None
    history: tuple[dict[str, Any], ...]
    cart: dict[str, Any] | None
    offsets: Mapping[tuple[str, str, int], int]
    """``(group, topic, partition) → next offset`` of the partitions read."""
    processed: Mapping[tuple[str, str], str]
    """``(group, event_id) → outcome``."""
    note: str | None = None
    """Why the database was not read, when it was not."""


@dataclass(frozen=True, slots=True)
class Timeline:
    order_id: str
    cart_id: str | None
    entries: tuple[TimelineEntry, ...]
    database: DatabaseView
    last_change: LastChange | None
    findings: tuple[str, ...]
    reads: tuple[PartitionRead, ...]
    seconds: float

    @property
    def agrees(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        db = self.database
        return {
            "order_id": self.order_id,
            "cart_id": self.cart_id,
            "agrees": self.agrees,
            "findings": list(self.findings),
            "events": [entry.to_json() for entry in self.entries],
            "database": {
                "order": _jsonable(db.order),
                "history": [_jsonable(row) for row in db.history],
                "cart": _jsonable(db.cart),
                "last_change": self.last_change.to_json() if self.last_change else None,
                "offsets": [
                    {"group": g, "topic": t, "partition": p, "next_offset": o}
                    for (g, t, p), o in sorted(db.offsets.items())
                ],
                "note": db.note,
            },
            "reads": [read.to_json() for read in self.reads],
            "seconds": round(self.seconds, 4),
        }


def _jsonable(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out: dict[str, Any] = {}
    for name, value in row.items():
        if hasattr(value, "isoformat"):
            out[name] = value.isoformat().replace("+00:00", "Z")
        elif value is None or isinstance(value, (int, str, bool)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


# -- reading the topics -------------------------------------------------------------------


class KeyScanner:
    """Reads the one partition a key hashes to and keeps the messages with that key.

    One assign-only reader serves every scan (use as a context manager)."""

    def __init__(
        self,
        settings: Settings,
        cluster: Cluster,
        decoder: MessageDecoder,
        *,
        window: int | None,
        timeout: float,
    ) -> None:
        self._cluster = cluster
        self._decoder = decoder
        self._window = window
        self._reader = TopicReader(settings, timeout, **{"fetch.wait.max.ms": FETCH_WAIT_MS})
        self._reader.load_metadata()
        self.reads: list[PartitionRead] = []

    def __enter__(self) -> KeyScanner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._reader.close()

    def partition_of(self, topic: str, key: str) -> int | None:
        """The key's partition of ``topic``; None when the topic does not exist."""
        if topic not in self._cluster.metadata().topics:
            return None
        count = len(self._cluster.partitions(topic))
        return partition_for_key(key, count)

    def scan(self, topic: str, key: str) -> list[InspectedMessage]:
        """Decoded messages keyed ``key`` in its partition of ``topic``, in offset order."""
        partition = self.partition_of(topic, key)
        if partition is None:
            return []
        marks: Watermarks = self._cluster.watermarks([(topic, partition)])[(topic, partition)]
        start = marks.start
        if self._window is not None:
            start = max(start, marks.end - self._window)
        began = time.perf_counter()
        wanted = key.encode()
        raw = []
        if start < marks.end:
            plan = ReadPlan(topic, {partition: start}, {partition: marks.end})
            with closing(self._reader.messages(plan)) as stream:
                raw = [message for message in stream if message.key() == wanted]
        found = [self._decoder.inspect(message) for message in raw]
        seconds = time.perf_counter() - began
        self.reads.append(
            PartitionRead(topic, partition, key, start, marks.end, marks.start, len(found), seconds)
        )
        return found


# -- the database -------------------------------------------------------------------------


def read_database(
    settings: Settings,
    order_id: str,
    cart_id: str | None,
    event_ids: Mapping[str, Iterable[str]],
    partitions: Iterable[tuple[str, str, int]],
) -> DatabaseView:
    """The order's row, history and cart, and the groups' offsets and outcomes.

    ``event_ids`` maps each group to the event ids whose outcome is wanted;
    ``partitions`` lists ``(group, topic, partition)`` whose next offset is wanted.
    """
    engine = read_only_engine(settings.database_url)
    if engine is None:
        return DatabaseView(None, (), None, {}, {}, "no database file")
    try:
        with engine.connect() as connection:
            if not engine.dialect.has_table(connection, orders_table.name):
                return DatabaseView(None, (), None, {}, {}, "the database has no tables yet")
            return _read(connection, order_id, cart_id, event_ids, list(partitions))
    except SQLAlchemyError as exc:
        raise ConnectionFailed(f"reading the database failed: {describe_db_error(exc)}") from None
    finally:
        engine.dispose()


def _read(
    connection: Connection,
    order_id: str,
    cart_id: str | None,
    event_ids: Mapping[str, Iterable[str]],
    partitions: list[tuple[str, str, int]],
) -> DatabaseView:
    row = connection.execute(select(orders_table).where(orders_table.c.order_id == order_id))
    order = row.mappings().first()
    h = history_table.c
    history = connection.execute(
        select(h.seq, h.from_status, h.to_status, h.event_type, h.event_id, h.occurred_at)
        .where(h.order_id == order_id)
        .order_by(h.seq)
    ).mappings()
    history_rows = tuple(dict(change) for change in history)
    wanted_cart = cart_id or (order["cart_id"] if order is not None else None)
    cart = None
    if wanted_cart:
        cart_row = connection.execute(
            select(carts_table).where(carts_table.c.cart_id == wanted_cart)
        )
        found = cart_row.mappings().first()
        cart = dict(found) if found is not None else None
    processed: dict[tuple[str, str], str] = {}
    p = processed_table.c
    for group, ids in event_ids.items():
        id_list = sorted(set(ids))
        if not id_list:
            continue
        query = select(p.event_id, p.outcome).where(p.group_id == group, p.event_id.in_(id_list))
        for event_id, outcome in connection.execute(query):
            processed[(group, event_id)] = outcome
    offsets: dict[tuple[str, str, int], int] = {}
    o = offsets_table.c
    for group, topic, partition in partitions:
        next_offset = connection.scalar(
            select(o.next_offset).where(
                o.group_id == group, o.topic == topic, o.partition == partition
            )
        )
        if next_offset is not None:
            offsets[(group, topic, partition)] = int(next_offset)
    return DatabaseView(
        dict(order) if order is not None else None,
        history_rows,
        cart,
        offsets,
        processed,
    )


# -- putting it together --------------------------------------------------------------------


@dataclass
class _Topics:
    order: str
    cart: str

    def logical(self, physical: str) -> str | None:
        if physical == self.order:
            return ORDER_TOPIC
        if physical == self.cart:
            return CART_TOPIC
        return None


def order_timeline(
    settings: Settings,
    order_id: str,
    *,
    window: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    decoder: MessageDecoder | None = None,
) -> Timeline:
    """Every event about ``order_id``, with the database's view and where they disagree.

    ``window``: read at most the last N offsets of each partition (None: all of it).
    ``decoder``: one kept between calls keeps its registry look-ups (a live view).
    """
    if not order_id.strip():
        raise UsageError("the order id is empty")
    if window is not None and window <= 0:
        raise UsageError("--window must be a positive number of offsets")
    began = time.perf_counter()
    topics = _Topics(settings.topic(ORDER_TOPIC), settings.topic(CART_TOPIC))
    decoder = decoder or make_decoder(settings)
    with Cluster(settings, timeout) as cluster:
        if topics.order not in cluster.metadata().topics:
            raise UsageError(
                f"unknown topic {topics.order!r} (list them with 'shopstream inspect topics')"
            )
        scanner = KeyScanner(settings, cluster, decoder, window=window, timeout=timeout)
        with scanner:
            order_events = scanner.scan(topics.order, order_id)
            order_letters = scanner.scan(dlq_topic(topics.order), order_id)
            cart_id = _cart_id(order_events, order_letters)
            if cart_id is None:
                cart_id = _database_cart_id(settings, order_id)
            cart_events: list[InspectedMessage] = []
            cart_letters: list[InspectedMessage] = []
            if cart_id is not None:
                cart_events = scanner.scan(topics.cart, cart_id)
                cart_letters = scanner.scan(dlq_topic(topics.cart), cart_id)
    events = [*order_events, *cart_events]
    letters = [*order_letters, *cart_letters]
    wanted_ids: dict[str, set[str]] = {}
    wanted_offsets: list[tuple[str, str, int]] = []
    for read in scanner.reads:
        logical = topics.logical(read.topic)
        for group in GROUPS_BY_TOPIC.get(logical or "", ()):
            wanted_offsets.append((group, read.topic, read.partition))
    for message in events:
        for group in GROUPS_BY_TOPIC.get(topics.logical(message.topic) or "", ()):
            event_id = _event_id(message)
            if event_id:
                wanted_ids.setdefault(group, set()).add(event_id)
    database = read_database(settings, order_id, cart_id, wanted_ids, wanted_offsets)
    if not events and not letters and database.order is None:
        where = ", ".join(f"{r.topic} partition {r.partition}" for r in scanner.reads)
        raise UnknownOrder(
            f"unknown order {order_id!r}: no event keyed by it in {where or 'its partition'} "
            "and no row in orders"
        )
    entries = _entries([cart_events, order_events, cart_letters, order_letters], database, topics)
    last_change = _last_change(database, entries)
    findings = _findings(order_id, entries, database, last_change, scanner.reads, topics)
    return Timeline(
        order_id=order_id,
        cart_id=cart_id,
        entries=tuple(entries),
        database=database,
        last_change=last_change,
        findings=tuple(findings),
        reads=tuple(scanner.reads),
        seconds=time.perf_counter() - began,
    )


def _event_id(message: InspectedMessage) -> str | None:
    value = (message.event or {}).get("event_id")
    return value if isinstance(value, str) else None


def _cart_id(*streams: list[InspectedMessage]) -> str | None:
    for stream in streams:
        for message in stream:
            event = message.event or {}
            if message.event_type == "OrderCreated" and isinstance(event.get("cart_id"), str):
                return str(event["cart_id"])
    return None


def _database_cart_id(settings: Settings, order_id: str) -> str | None:
    view = read_database(settings, order_id, None, {}, [])
    if view.order is None:
        return None
    cart_id = view.order.get("cart_id")
    return str(cart_id) if cart_id else None


def _entries(
    streams: list[list[InspectedMessage]],
    database: DatabaseView,
    topics: _Topics,
) -> list[TimelineEntry]:
    """Each stream (one partition, in offset order) merged by timestamp; on a tie the
    earlier stream first (cart before order events, events before dead letters)."""
    per_stream: list[list[tuple[int, int, TimelineEntry]]] = []
    for rank, stream in enumerate(streams):
        entries: list[tuple[int, int, TimelineEntry]] = []
        for message in stream:
            entries.append((message.timestamp_ms or 0, rank, _entry(message, database, topics)))
        per_stream.append(entries)
    merged = heapq.merge(*per_stream, key=lambda item: (item[0], item[1]))
    return [entry for _, _, entry in merged]


def _entry(message: InspectedMessage, database: DatabaseView, topics: _Topics) -> TimelineEntry:
    if message.topic.endswith(DLQ_SUFFIX):
        return TimelineEntry(message, "dead-letter", {}, DeadLetter.from_message(message))
    groups: dict[str, str] = {}
    event_id = _event_id(message)
    for group in GROUPS_BY_TOPIC.get(topics.logical(message.topic) or "", ()):
        groups[group] = _outcome(database, group, message, event_id)
    return TimelineEntry(message, "event", groups)


def _outcome(
    database: DatabaseView, group: str, message: InspectedMessage, event_id: str | None
) -> str:
    recorded = database.processed.get((group, event_id or ""))
    if recorded is not None:
        return recorded
    next_offset = database.offsets.get((group, message.topic, message.partition))
    if next_offset is None or message.offset >= next_offset:
        return PENDING
    return MISSING


def _last_change(database: DatabaseView, entries: list[TimelineEntry]) -> LastChange | None:
    if not database.history:
        return None
    last = database.history[-1]
    event_id = str(last["event_id"])
    where = next((e.message for e in entries if e.kind == "event" and e.event_id == event_id), None)
    return LastChange(
        event_id=event_id,
        event_type=str(last["event_type"]),
        to_status=str(last["to_status"]),
        topic=where.topic if where else None,
        partition=where.partition if where else None,
        offset=where.offset if where else None,
    )


def _findings(
    order_id: str,
    entries: list[TimelineEntry],
    database: DatabaseView,
    last_change: LastChange | None,
    reads: list[PartitionRead],
    topics: _Topics,
) -> list[str]:
    """Where the topics and the database disagree, one sentence each."""
    if database.note is not None:
        return []
    found: list[str] = []
    order_events = [e for e in entries if e.kind == "event" and e.message.topic == topics.order]
    applied = [e for e in order_events if e.groups.get(ORDER_STATE_GROUP) == APPLIED]
    for entry in entries:
        for group, outcome in entry.groups.items():
            if outcome == MISSING:
                found.append(
                    f"{entry.coordinates} ({entry.message.event_type}) is before {group}'s "
                    f"offset but the group never recorded its event id"
                )
    letters = {
        (e.dead_letter.group, e.dead_letter.event_id) for e in entries if e.dead_letter is not None
    }
    for entry in entries:
        for group, outcome in entry.groups.items():
            if outcome == DEAD_LETTERED and (group, entry.event_id) not in letters:
                found.append(
                    f"{group} dead-lettered {entry.coordinates} ({entry.message.event_type}) "
                    "but its dead letter is not in the DLQ"
                )
    row = database.order
    history_ids = [str(change["event_id"]) for change in database.history]
    applied_ids = [e.event_id for e in applied]
    complete = all(read.complete for read in reads if read.topic == topics.order)
    if row is None:
        if applied:
            found.append(
                f"order-state applied {len(applied)} event(s) of {order_id} but there is no "
                "row in orders"
            )
        return found
    if int(row["events_applied"]) != len(history_ids):
        found.append(
            f"orders.events_applied is {row['events_applied']} but order_status_history "
            f"has {len(history_ids)} change(s)"
        )
    if complete and set(history_ids) != {i for i in applied_ids if i}:
        only_db = [i for i in history_ids if i not in applied_ids]
        only_topic = [i for i in applied_ids if i not in history_ids]
        if only_db:
            found.append(
                f"{len(only_db)} change(s) in order_status_history have no event in "
                f"{topics.order} (first: {only_db[0]})"
            )
        if only_topic:
            found.append(
                f"{len(only_topic)} event(s) recorded as applied by order-state are not in "
                f"order_status_history (first: {only_topic[0]})"
            )
    if applied:
        expected = _status_after(applied[-1])
        if expected is not None and expected != row["status"]:
            found.append(
                f"orders.status is {row['status']} but the last applied event "
                f"({applied[-1].message.event_type} at {applied[-1].coordinates}) leads to "
                f"{expected}"
            )
    if last_change is not None and last_change.offset is None and complete:
        found.append(
            f"the event that last changed the row ({last_change.event_id}) is not in {topics.order}"
        )
    return found


def _status_after(entry: TimelineEntry) -> str | None:
    """The status the order-state machine moves an order to with this event."""
    event_type = entry.message.event_type or ""
    if event_type == "OrderCreated":
        return OrderStatus.PENDING_PAYMENT.value
    rule = TRANSITIONS.get(event_type)
    return rule[1].value if rule is not None else None
