"""``dlq redrive``: re-produce chosen dead letters to the topic they came from.

Choosing. The dead letters of ``<topic>.dlq`` are read (from ``since`` on, when given)
and kept when they match every filter given: the group that refused them, the
reason, a time window on the dead letter's timestamp, or their DLQ coordinates.

Sending. Each chosen letter's event is decoded, given a new ``event_id`` and
re-encoded with the current writer schema, then produced with its original key to
its original topic (the ``dlq.topic`` header) with ``event_type`` and headers linking
it to the dead letter: ``redrive.topic``, ``redrive.partition``, ``redrive.offset``
and ``redrive.event_id`` (the id it had). The consumer groups then see an event they
have never seen, and apply it or dead-letter it again (keeping these headers).
A letter whose bytes do not decode cannot get a new id and is left where it is.

Once only. The record of what was redriven lives in the database's
``dlq_redrives`` table (one row per dead letter, keyed by its DLQ coordinates),
next to the groups' own offsets and processed event ids, where the console and this
command can look it up with one query instead of scanning the event topics for the
headers above. A row is written once the broker acknowledged the redriven event. The
new ``event_id`` is derived from the dead letter's coordinates and timestamp (a
UUIDv7 at the dead letter's time), so if the process dies between the acknowledgement
and the row, the letter is sent again on the next run with the *same* id and every
group skips it as a re-sent event: a letter is applied at most once either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message
from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import SQLAlchemyError

from schemas import CART_TOPIC, DLQ_SUFFIX, ORDER_TOPIC, load_catalog
from shopstream.config import Settings
from shopstream.db.engine import describe_db_error, make_engine
from shopstream.db.models import DlqRedrive
from shopstream.errors import ConnectionFailed, ShopstreamError, UsageError
from shopstream.events import event_from_json, time_ordered_uuid
from shopstream.inspection.cluster import DEFAULT_TIMEOUT_S
from shopstream.inspection.dlq_reader import DeadLetter, read_dead_letters
from shopstream.inspection.offset_spec import AtTime, Beginning, OffsetSpec
from shopstream.kafka.clients import make_producer
from shopstream.serde import EVENT_TYPE_HEADER, EventSerializer, make_registry_client

TOPIC_HEADER = "redrive.topic"
PARTITION_HEADER = "redrive.partition"
OFFSET_HEADER = "redrive.offset"
EVENT_ID_HEADER = "redrive.event_id"

WILL_SEND = "will-send"
SENT = "sent"
ALREADY = "already-redriven"
WITH_ANOTHER = "sent-with-another-letter"
UNDECODABLE = "undecodable"
NO_ORIGIN = "no-original-topic"
FLUSH_TIMEOUT_S = 60.0
_RECORDED = frozenset({SENT, WITH_ANOTHER, ALREADY})

redrives_table: Table = DlqRedrive.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Coordinates:
    """A dead letter's place in its DLQ."""

    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> Coordinates:
        """``OFFSET`` (partition 0) or ``PARTITION:OFFSET``."""
        partition, _, offset = text.strip().rpartition(":")
        try:
            parsed = cls(int(partition or "0"), int(offset))
        except ValueError:
            raise UsageError(
                f"invalid dead letter {text!r}; expected OFFSET or PARTITION:OFFSET"
            ) from None
        if parsed.partition < 0 or parsed.offset < 0:
            raise UsageError(f"invalid dead letter {text!r}: partition and offset are >= 0")
        return parsed


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters of ``topic``'s DLQ to redrive (None/empty: any)."""

    topic: str
    group: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    at: tuple[Coordinates, ...] = ()
    limit: int | None = None

    def __post_init__(self) -> None:
        if (
            self.since_ms is not None
            and self.until_ms is not None
            and self.since_ms > self.until_ms
        ):
            raise UsageError("--since is after --until: the time window is empty")
        if self.limit is not None and self.limit <= 0:
            raise UsageError("--limit must be at least 1")

    def start(self) -> OffsetSpec:
        return AtTime(self.since_ms) if self.since_ms is not None else Beginning()

    def matches(self, letter: DeadLetter) -> bool:
        message = letter.message
        if self.group is not None and letter.group != self.group:
            return False
        if self.reason is not None and letter.reason != self.reason:
            return False
        stamp = message.timestamp_ms
        if self.until_ms is not None and (stamp is None or stamp > self.until_ms):
            return False
        if self.since_ms is not None and (stamp is None or stamp < self.since_ms):
            return False
        return not self.at or Coordinates(message.partition, message.offset) in self.at


@dataclass(frozen=True, slots=True)
class RedriveItem:
    """One chosen dead letter and what happened (or would happen) to it."""

    letter: DeadLetter
    status: str
    event_id: str | None = None
    """The id the redriven event carries (or will carry)."""
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    note: str | None = None
    recorded: bool | None = None
    """False: sent (or found sent) but its dlq_redrives row is still to be written."""

    def to_json(self) -> dict[str, Any]:
        message = self.letter.message
        return {
            "dlq": {
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
            },
            "group": self.letter.group,
            "reason": self.letter.reason,
            "event_type": message.event_type,
            "key": message.key,
            "original_event_id": self.letter.event_id,
            "status": self.status,
            "event_id": self.event_id,
            "to": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class RedriveReport:
    dlq_topic: str
    dry_run: bool
    items: tuple[RedriveItem, ...]

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    def to_json(self) -> dict[str, Any]:
        return {
            "dlq_topic": self.dlq_topic,
            "dry_run": self.dry_run,
            "chosen": len(self.items),
            "sent": self.count(SENT),
            "would_send": self.count(WILL_SEND),
            "already_redriven": self.count(ALREADY),
            "with_another_letter": self.count(WITH_ANOTHER),
            "skipped": self.count(UNDECODABLE) + self.count(NO_ORIGIN),
            "letters": [item.to_json() for item in self.items],
        }


def redrive_event_id(letter: DeadLetter) -> str:
    """The new event id of a dead letter's redrive: the same every time for the same
    original event, whichever group's letter it comes from (a UUIDv7 at the event's
    ``occurred_at``, its random bits from the original coordinates)."""
    message = letter.message
    if letter.original_topic and letter.original_offset is not None:
        origin = f"{letter.original_topic}\0{letter.original_partition}\0{letter.original_offset}"
    else:
        origin = f"{message.topic}\0{message.partition}\0{message.offset}"
    digest = hashlib.sha256(origin.encode()).digest()
    occurred = event_from_json(message.event or {}).occurred_at
    return time_ordered_uuid(
        int(occurred.timestamp() * 1000), int.from_bytes(digest[:10], "big") >> 6
    )


@dataclass(frozen=True, slots=True)
class _Done:
    """What earlier redrives did: letters redriven, and where each new event landed."""

    letters: set[tuple[int, int]]
    events: dict[str, tuple[str, int, int]]


def redrive(
    settings: Settings,
    selection: Selection,
    *,
    dry_run: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> RedriveReport:
    """Redrive the dead letters ``selection`` chooses (or list them, with ``dry_run``).

    Two groups may refuse the same event: their letters carry it once (one new event).
    """
    report = read_dead_letters(
        settings, selection.topic, start=selection.start(), reason=selection.reason, timeout=timeout
    )
    chosen = [letter for letter in report.letters if selection.matches(letter)]
    if selection.limit is not None:
        chosen = chosen[: selection.limit]
    engine = make_engine(settings.database_url)
    try:
        done = _redriven(engine, report.topic)
        planned = _plan_all(chosen, done)
        if dry_run:
            return RedriveReport(report.topic, True, tuple(planned))
        sent = _send(settings, [item for item in planned if item.status == WILL_SEND])
        landed = dict(done.events)
        landed.update(
            {k: (i.topic or "", i.partition or 0, i.offset or 0) for k, i in sent.items()}
        )
        items = [
            _landed(
                sent.get(item.event_id or "", item) if item.status == WILL_SEND else item, landed
            )
            for item in planned
        ]
        _record(
            engine,
            report.topic,
            [i for i in items if i.status in _RECORDED and i.recorded is False],
        )
    finally:
        engine.dispose()
    return RedriveReport(report.topic, False, tuple(items))


def _plan_all(letters: list[DeadLetter], done: _Done) -> list[RedriveItem]:
    planned: list[RedriveItem] = []
    first: set[str] = set()
    for letter in letters:
        item = _plan(letter, done)
        if item.status == WILL_SEND and item.event_id in first:
            item = replace(
                item,
                status=WITH_ANOTHER,
                note="another group's letter of the same event",
                recorded=False,
            )
        if item.status == WILL_SEND:
            first.add(item.event_id or "")
        planned.append(item)
    return planned


def _landed(item: RedriveItem, landed: dict[str, tuple[str, int, int]]) -> RedriveItem:
    """``item`` with where its event landed (sent now or by an earlier redrive)."""
    where = landed.get(item.event_id or "")
    if where is None or item.status not in _RECORDED:
        return item
    return replace(item, topic=where[0], partition=where[1], offset=where[2])


def _redriven(engine: Engine, dlq_topic: str) -> _Done:
    c = redrives_table.c
    try:
        with engine.connect() as connection:
            if not engine.dialect.has_table(connection, redrives_table.name):
                raise ShopstreamError(
                    "the database has no dlq_redrives table; run 'shopstream db upgrade'"
                )
            rows = connection.execute(
                select(
                    c.dlq_partition, c.dlq_offset, c.event_id, c.topic, c.partition, c.offset
                ).where(c.dlq_topic == dlq_topic)
            ).all()
    except SQLAlchemyError as exc:
        raise ConnectionFailed(f"reading dlq_redrives failed: {describe_db_error(exc)}") from None
    return _Done(
        letters={(int(r[0]), int(r[1])) for r in rows},
        events={str(r[2]): (str(r[3]), int(r[4]), int(r[5])) for r in rows},
    )


def _plan(letter: DeadLetter, done: _Done) -> RedriveItem:
    message = letter.message
    if (message.partition, message.offset) in done.letters:
        return RedriveItem(letter, ALREADY)
    if message.problem is not None or message.event is None:
        reason = message.problem.reason if message.problem else "no event"
        return RedriveItem(letter, UNDECODABLE, note=f"the event does not decode ({reason})")
    if not letter.original_topic:
        return RedriveItem(letter, NO_ORIGIN, note="no dlq.topic header")
    event_id = redrive_event_id(letter)
    if event_id in done.events:
        return RedriveItem(
            letter,
            ALREADY,
            event_id=event_id,
            note="its event was redriven from another group's letter",
            recorded=False,
        )
    return RedriveItem(letter, WILL_SEND, event_id=event_id, topic=letter.original_topic)


class _Encoders:
    """One serializer per topic prefix (subjects are named after the prefixed topic)."""

    def __init__(self, settings: Settings) -> None:
        self._registry = make_registry_client(settings.registry_config())
        self._by_prefix: dict[str, EventSerializer] = {}

    def encode(self, letter: DeadLetter, event_id: str) -> tuple[bytes, str]:
        """The letter's event with ``event_id``, encoded for its original topic."""
        topic = letter.original_topic or ""
        event = event_from_json({**(letter.message.event or {}), "event_id": event_id})
        encoded = self._serializer(topic).encode(event)
        return encoded.value, encoded.event_type

    def _serializer(self, topic: str) -> EventSerializer:
        prefix = next(
            (
                topic.removesuffix(name)
                for name in (ORDER_TOPIC, CART_TOPIC)
                if topic.endswith(name)
            ),
            None,
        )
        if prefix is None or topic.endswith(DLQ_SUFFIX):
            raise UsageError(f"{topic!r} is not an event topic of this project")
        serializer = self._by_prefix.get(prefix)
        if serializer is None:
            catalog = load_catalog().with_topic_prefix(prefix)
            serializer = EventSerializer(self._registry, catalog=catalog)
            self._by_prefix[prefix] = serializer
        return serializer


def _send(settings: Settings, items: Sequence[RedriveItem]) -> dict[str, RedriveItem]:
    """Produce every item; the sent ones (with where they landed) by event id."""
    if not items:
        return {}
    encoders = _Encoders(settings)
    producer = make_producer(settings, **{"linger.ms": 5})
    results: dict[str, RedriveItem] = {}
    failures: list[str] = []

    def delivered(item: RedriveItem) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(f"{item.letter.message.offset}: {error.str()}")
                return
            results[item.event_id or ""] = replace(
                item,
                status=SENT,
                partition=message.partition(),
                offset=message.offset(),
                recorded=False,
            )

        return on_delivery

    for item in items:
        value, event_type = encoders.encode(item.letter, item.event_id or "")
        message = item.letter.message
        headers: list[tuple[str, str | bytes | None]] = [
            (EVENT_TYPE_HEADER, event_type.encode()),
            (TOPIC_HEADER, message.topic.encode()),
            (PARTITION_HEADER, str(message.partition).encode()),
            (OFFSET_HEADER, str(message.offset).encode()),
        ]
        if item.letter.event_id:
            headers.append((EVENT_ID_HEADER, item.letter.event_id.encode()))
        key = message.key.encode() if message.key is not None else None
        producer.produce(item.topic or "", value, key, headers=headers, on_delivery=delivered(item))
        producer.poll(0)
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    if remaining or failures:
        detail = (
            failures[0] if failures else f"{remaining} not acknowledged in {FLUSH_TIMEOUT_S:g}s"
        )
        sent = len(results)
        raise ShopstreamError(
            f"redrive incomplete: {sent} of {len(items)} sent ({detail}); run it again: "
            "the ones sent are recorded or carry the same event id"
        )
    return results


def _record(engine: Engine, dlq_topic: str, items: Iterable[RedriveItem]) -> None:
    rows = [
        {
            "dlq_topic": dlq_topic,
            "dlq_partition": item.letter.message.partition,
            "dlq_offset": item.letter.message.offset,
            "group_id": item.letter.group,
            "reason": item.letter.reason,
            "original_event_id": item.letter.event_id,
            "event_id": item.event_id,
            "topic": item.topic,
            "partition": item.partition,
            "offset": item.offset,
            "redriven_at": datetime.now(UTC),
        }
        for item in items
    ]
    if not rows:
        return
    try:
        with engine.begin() as connection:
            connection.execute(insert(redrives_table), rows)
    except SQLAlchemyError as exc:
        raise ConnectionFailed(
            f"the letters were sent but recording them in dlq_redrives failed "
            f"({describe_db_error(exc)}); a new run sends them again with the same event ids"
        ) from None
