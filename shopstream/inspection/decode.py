"""Raw Kafka messages → :class:`InspectedMessage`: decoded event or raw bytes and why.

A message that does not decode is not an error for inspection: it is shown with its
bytes (hex, truncated) and the decoder's reason, and reading goes on. Only a registry
that cannot be reached stops the command.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from shopstream.events import EventValidationError
from shopstream.kafka.offsets import coordinates
from shopstream.registry.lookup import SubjectResolver
from shopstream.serde import EVENT_TYPE_HEADER, DecodeError, EventDeserializer

RAW_PREVIEW_BYTES = 64


@dataclass(frozen=True, slots=True)
class DecodeProblem:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class InspectedMessage:
    """One message as inspection shows it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: str | None
    headers: dict[str, str]
    size: int
    event_type: str | None
    schema_id: int | None = None
    subject: str | None = None
    version: int | None = None
    event: dict[str, Any] | None = None
    problem: DecodeProblem | None = None
    raw_hex: str | None = None

    @property
    def timestamp(self) -> str | None:
        return format_millis(self.timestamp_ms)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "timestamp_ms": self.timestamp_ms,
            "key": self.key,
            "headers": self.headers,
            "event_type": self.event_type,
            "schema_id": self.schema_id,
            "subject": self.subject,
            "version": self.version,
            "event": self.event,
        }
        if self.problem is not None:
            out["error"] = {"reason": self.problem.reason, "detail": self.problem.detail}
            out["raw"] = self.raw_hex
            out["size"] = self.size
        return out


def format_millis(timestamp_ms: int | None) -> str | None:
    """Epoch millis → ``2026-11-29T15:00:00.123Z``."""
    if timestamp_ms is None:
        return None
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def text_of(data: bytes | str | None) -> str | None:
    if data is None:
        return None
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def raw_preview(value: bytes | None, limit: int = RAW_PREVIEW_BYTES) -> str:
    """Hex of the first ``limit`` bytes, with ``…`` when there were more."""
    data = value or b""
    shown = data[:limit].hex()
    return shown + "…" if len(data) > limit else shown


def message_headers(message: Message) -> dict[str, str]:
    """Headers as text (last value wins for a repeated name)."""
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {name: text_of(value) or "" for name, value in pairs}


def message_timestamp(message: Message) -> int | None:
    kind, value = message.timestamp()
    return None if kind == TIMESTAMP_NOT_AVAILABLE else int(value)


class MessageDecoder:
    """Decode messages with the project's deserializer and name their subject/version."""

    def __init__(self, deserializer: EventDeserializer, subjects: SubjectResolver) -> None:
        self._deserializer = deserializer
        self._subjects = subjects

    def inspect(self, message: Message) -> InspectedMessage:
        value: bytes | None = message.value()
        headers = message_headers(message)
        topic, partition, offset = coordinates(message)
        base = InspectedMessage(
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp_ms=message_timestamp(message),
            key=text_of(message.key()),
            headers=headers,
            size=len(value or b""),
            event_type=headers.get(EVENT_TYPE_HEADER),
        )
        try:
            decoded = self._deserializer.decode(value)
        except DecodeError as exc:
            return self._failed(base, value, exc.reason, exc.detail, exc.schema_id)
        except EventValidationError as exc:
            schema_id = _schema_id_of(value)
            return self._failed(base, value, "invalid-event", exc.message, schema_id)
        return self._decoded(base, decoded.event.to_json(), decoded.schema_id)

    def _decoded(
        self, base: InspectedMessage, event: dict[str, Any], schema_id: int
    ) -> InspectedMessage:
        writer = self._deserializer.writer_schema(schema_id)
        subject, version = self._subjects.resolve(schema_id, base.topic, writer.full_name)
        return replace(
            base,
            event_type=writer.event_type,
            schema_id=schema_id,
            subject=subject,
            version=version,
            event=event,
        )

    def _failed(
        self,
        base: InspectedMessage,
        value: bytes | None,
        reason: str,
        detail: str,
        schema_id: int | None,
    ) -> InspectedMessage:
        subject, version = self._subject_if_known(schema_id, base.topic)
        return replace(
            base,
            schema_id=schema_id,
            subject=subject,
            version=version,
            problem=DecodeProblem(reason, detail),
            raw_hex=raw_preview(value),
        )

    def _subject_if_known(self, schema_id: int | None, topic: str) -> tuple[str | None, int | None]:
        if schema_id is None:
            return None, None
        try:
            writer = self._deserializer.writer_schema(schema_id)
        except DecodeError:
            return None, None
        return self._subjects.resolve(schema_id, topic, writer.full_name)


def _schema_id_of(value: bytes | None) -> int | None:
    if not value or len(value) < 5 or value[0] != 0:
        return None
    return int.from_bytes(value[1:5], "big")
