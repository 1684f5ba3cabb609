"""``inspect dlq TOPIC``: dead letters with their reason, group and original coordinates.

The consumer runtime writes an event it could not apply to ``<topic>.dlq`` with the
original key and value and the headers below. This module reads them back (through
:func:`~shopstream.inspection.peek.peek`, so it is just as read-only) and groups them
by reason, most frequent first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from schemas import DLQ_SUFFIX, dlq_topic
from shopstream.config import Settings
from shopstream.inspection.cluster import DEFAULT_TIMEOUT_S, Cluster
from shopstream.inspection.decode import InspectedMessage, format_millis
from shopstream.inspection.offset_spec import Beginning, OffsetSpec
from shopstream.inspection.peek import PeekRequest, peek

REASON_HEADER = "dlq.reason"
ERROR_HEADER = "dlq.error"
GROUP_HEADER = "dlq.group"
TOPIC_HEADER = "dlq.topic"
PARTITION_HEADER = "dlq.partition"
OFFSET_HEADER = "dlq.offset"
TIMESTAMP_HEADER = "dlq.timestamp"
EVENT_ID_HEADER = "dlq.event_id"
UNKNOWN_REASON = "unknown"


def dead_letter_topic(name: str) -> str:
    """``order-events`` or ``order-events.dlq`` → ``order-events.dlq``."""
    return name if name.endswith(DLQ_SUFFIX) else dlq_topic(name)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: InspectedMessage
    reason: str
    error: str | None
    group: str | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    dead_lettered_at: str | None
    event_id: str | None

    @classmethod
    def from_message(cls, message: InspectedMessage) -> DeadLetter:
        headers = message.headers
        return cls(
            message=message,
            reason=headers.get(REASON_HEADER) or UNKNOWN_REASON,
            error=headers.get(ERROR_HEADER),
            group=headers.get(GROUP_HEADER),
            original_topic=headers.get(TOPIC_HEADER),
            original_partition=_int_or_none(headers.get(PARTITION_HEADER)),
            original_offset=_int_or_none(headers.get(OFFSET_HEADER)),
            dead_lettered_at=_timestamp_text(headers.get(TIMESTAMP_HEADER)),
            event_id=headers.get(EVENT_ID_HEADER) or _event_id(message),
        )

    def to_json(self) -> dict[str, Any]:
        message = self.message
        out: dict[str, Any] = {
            "reason": self.reason,
            "error": self.error,
            "group": self.group,
            "original": {
                "topic": self.original_topic,
                "partition": self.original_partition,
                "offset": self.original_offset,
            },
            "dead_lettered_at": self.dead_lettered_at,
            "event_id": self.event_id,
            "partition": message.partition,
            "offset": message.offset,
            "timestamp": message.timestamp,
            "key": message.key,
            "event_type": message.event_type,
            "schema_id": message.schema_id,
            "subject": message.subject,
            "version": message.version,
            "event": message.event,
        }
        if message.problem is not None:
            out["decode_error"] = {
                "reason": message.problem.reason,
                "detail": message.problem.detail,
            }
            out["raw"] = message.raw_hex
        return out


@dataclass(frozen=True, slots=True)
class DlqReport:
    topic: str
    letters: tuple[DeadLetter, ...]

    def by_reason(self) -> list[tuple[str, list[DeadLetter]]]:
        """Dead letters grouped by reason, the most frequent reason first."""
        counts = Counter(letter.reason for letter in self.letters)
        order = sorted(counts, key=lambda reason: (-counts[reason], reason))
        return [(reason, [x for x in self.letters if x.reason == reason]) for reason in order]

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "total": len(self.letters),
            "reasons": [
                {
                    "reason": reason,
                    "count": len(letters),
                    "messages": [letter.to_json() for letter in letters],
                }
                for reason, letters in self.by_reason()
            ],
        }


def read_dead_letters(
    settings: Settings,
    topic: str,
    *,
    start: OffsetSpec | None = None,
    count: int | None = None,
    reason: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> DlqReport:
    """Every dead letter of ``topic`` (or its ``.dlq``) from ``start`` to the end."""
    with Cluster(settings, timeout) as cluster:
        name = cluster.resolve_topic(dead_letter_topic(topic))
    request = PeekRequest(topic=name, start=start or Beginning())
    letters: list[DeadLetter] = []
    stream = peek(settings, request, timeout=timeout)
    try:
        for message in stream:
            letter = DeadLetter.from_message(message)
            if reason is None or letter.reason == reason:
                letters.append(letter)
            if count is not None and len(letters) >= count:
                break
    finally:
        stream.close()
    return DlqReport(name, tuple(letters))


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _event_id(message: InspectedMessage) -> str | None:
    event_id = (message.event or {}).get("event_id")
    return event_id if isinstance(event_id, str) else None


def _timestamp_text(text: str | None) -> str | None:
    """The ``dlq.timestamp`` header as ISO-8601 (epoch millis converted), else as is."""
    millis = _int_or_none(text)
    return format_millis(millis) if millis is not None else text
