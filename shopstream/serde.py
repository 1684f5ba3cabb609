"""Where events are encoded to and decoded from Kafka message bytes.

Wire format: Confluent's — magic byte ``0``, the 4-byte big-endian schema id, then the
Avro binary body: written by an encoder compiled for the writer schema
(:mod:`shopstream.avro_encoder`, fastavro's bytes at a third of its cost), or by fastavro's
``schemaless_writer`` for a schema that compiler does not cover. Subjects follow
TopicRecordNameStrategy (``<topic>-<namespace>.<Record>``) because several record
types share a topic. Schema ids come from the registry through confluent-kafka's
:class:`SchemaRegistryClient`; each id is looked up once and cached here.

The deserializer decodes with the consumer's own reader schema for the record type
(Avro schema resolution), so an old consumer reads new events and a new one reads
old events. Anything it cannot decode raises :class:`DecodeError` with the reason.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, NamedTuple

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import EventSchema, SchemaCatalog, load_catalog, parse_for_codec
from shopstream.avro_encoder import compile_encoder
from shopstream.config import mask_url_password
from shopstream.errors import ConfigError, ConnectionFailed, ShopstreamError
from shopstream.events import EVENT_TYPES, DomainEvent, EventValidationError

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")
EVENT_TYPE_HEADER = "event_type"


class SchemaRegistrationError(ShopstreamError):
    """The registry refused a schema, or has none when one is required."""


class DecodeError(ShopstreamError):
    """Message bytes that cannot become an event. ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str, schema_id: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.schema_id = schema_id


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event ready to hand to a Kafka producer."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_type: str


@dataclass(frozen=True, slots=True)
class EventWriter:
    """How one event type goes to Kafka: topic, key field, header and value encoder."""

    event_type: str
    topic: str
    key_of: Callable[[DomainEvent], str]
    """The aggregate id the message is keyed by (``attrgetter`` of the key field)."""
    headers: list[tuple[str, bytes]]
    """The ``event_type`` header, one list shared by every message (never changed)."""
    encode_value: Callable[[DomainEvent], bytes]
    """Event → Confluent-framed Avro (the schema id's header, then the body)."""

    def key(self, event: DomainEvent) -> bytes:
        """The message key: the aggregate id as UTF-8."""
        return self.key_of(event).encode()


def _fastavro_encoder(parsed: Any, prefix: bytes) -> Callable[[DomainEvent], bytes]:
    def encode(event: DomainEvent) -> bytes:
        buffer = io.BytesIO()
        buffer.write(prefix)
        fastavro.schemaless_writer(buffer, parsed, event.to_record())
        return buffer.getvalue()

    return encode


#: The Java exception class some registries put before their message.
_JAVA_EXCEPTION = re.compile(r"^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error): ")


def registry_error_text(exc: Exception) -> str:
    """One line from a registry error (or an unreachable registry)."""
    if isinstance(exc, SchemaRegistryError):
        message = _JAVA_EXCEPTION.sub("", " ".join(str(exc.error_message).split()))
        return f"{message} (HTTP {exc.http_status_code})"
    return " ".join(str(exc).split()) or type(exc).__name__


class EventSerializer:
    """Encode typed events to Confluent-framed Avro through the schema registry.

    ``auto_register=True`` (the default, for development) registers the local schema
    on first use. With ``auto_register=False`` the latest registered version of the
    subject is the writer schema, and a subject with no version is an error.
    """

    def __init__(
        self,
        registry: SchemaRegistryClient,
        *,
        catalog: SchemaCatalog | None = None,
        auto_register: bool = True,
    ) -> None:
        self._registry = registry
        self._catalog = catalog or load_catalog()
        self._auto_register = auto_register
        self._writers: dict[str, EventWriter] = {}

    def writer(self, event_type: str) -> EventWriter:
        """How ``event_type`` is written (its schema id resolved once, then cached)."""
        writer = self._writers.get(event_type)
        if writer is None:
            writer = self._resolve_writer(self._catalog.get(event_type))
            self._writers[event_type] = writer
        return writer

    def _resolve_writer(self, spec: EventSchema) -> EventWriter:
        subject = spec.subject()
        schema_id: int | None
        schema_str: str | None = None
        try:
            if self._auto_register:
                schema_id = self._registry.register_schema(subject, Schema(spec.schema_str, "AVRO"))
            else:
                latest = self._registry.get_latest_version(subject)
                schema_id, schema_str = latest.schema_id, latest.schema.schema_str
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise SchemaRegistrationError(
                    f"subject {subject} has no registered schema and auto-registration is off "
                    "(run 'shopstream schemas register')"
                ) from None
            raise SchemaRegistrationError(
                f"registry refused {subject}: {registry_error_text(exc)}"
            ) from None
        except Exception as exc:
            raise ConnectionFailed(
                f"schema registry unreachable at {self._registry_url()}: {registry_error_text(exc)}"
            ) from None
        if schema_id is None:
            raise SchemaRegistrationError(f"registry returned no schema id for {subject}")
        parsed = spec.parsed
        if schema_str is not None:
            try:
                parsed = parse_for_codec(json.loads(schema_str))
            except Exception as exc:
                raise SchemaRegistrationError(
                    f"latest schema of {subject} (id {schema_id}) does not parse: {exc}"
                ) from None
        prefix = HEADER.pack(MAGIC_BYTE, schema_id)
        encoder = compile_encoder(parsed, EVENT_TYPES[spec.name], prefix)
        return EventWriter(
            event_type=spec.name,
            topic=spec.topic,
            key_of=attrgetter(spec.key_field),
            headers=[(EVENT_TYPE_HEADER, spec.name.encode())],
            encode_value=encoder or _fastavro_encoder(parsed, prefix),
        )

    def _registry_url(self) -> str:
        conf = getattr(self._registry, "_rest_client", None)
        return mask_url_password(str(getattr(conf, "base_urls", ["?"])[0])) if conf else "?"

    def prepare(self, *event_types: str) -> None:
        """Resolve schema ids up front (fail fast before producing anything)."""
        for event_type in event_types or tuple(EVENT_TYPES):
            self.writer(event_type)

    def encode(self, event: DomainEvent) -> EncodedEvent:
        writer = self.writer(event.event_type)
        return EncodedEvent(
            topic=writer.topic,
            key=writer.key(event),
            value=writer.encode_value(event),
            headers=list(writer.headers),
            event_type=writer.event_type,
        )


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """What one schema id decodes to: the record type and its writer/reader schemas."""

    schema_id: int
    full_name: str
    event_type: str
    writer: Any
    reader: Any | None
    """None when the writer schema is the reader schema (no resolution needed)."""


class DecodedEvent(NamedTuple):
    """A decoded event and the id of the schema it was written with."""

    event: DomainEvent
    schema_id: int


class EventDeserializer:
    """Decode Confluent-framed Avro to typed events with our own reader schemas."""

    def __init__(
        self, registry: SchemaRegistryClient, *, catalog: SchemaCatalog | None = None
    ) -> None:
        self._registry = registry
        self._catalog = catalog or load_catalog()
        self._by_id: dict[int, WriterSchema] = {}

    def writer_schema(self, schema_id: int) -> WriterSchema:
        """The cached writer schema of ``schema_id`` (fetched once from the registry)."""
        known = self._by_id.get(schema_id)
        if known is None:
            known = self._fetch(schema_id)
            self._by_id[schema_id] = known
        return known

    def _fetch(self, schema_id: int) -> WriterSchema:
        try:
            registered = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            # Only the registry's own 40403 dead-letters; a bare 404 (a proxy, a wrong
            # path) is retried like an outage, never taken as "this id does not exist".
            if is_not_found(exc, SCHEMA_NOT_FOUND):
                raise DecodeError(
                    "unknown-schema-id", f"schema id {schema_id} is not in the registry", schema_id
                ) from None
            raise ConnectionFailed(
                f"schema registry error for id {schema_id}: {registry_error_text(exc)}"
            ) from None
        except Exception as exc:
            raise ConnectionFailed(
                f"schema registry unreachable: {registry_error_text(exc)}"
            ) from None
        try:
            raw = json.loads(registered.schema_str or "null")
            writer = parse_for_codec(raw)
        except Exception as exc:
            raise DecodeError("bad-writer-schema", str(exc), schema_id) from None
        full_name = _full_name(raw, schema_id)
        event_type = full_name.rsplit(".", 1)[-1]
        try:
            spec = self._catalog.get(event_type)
        except KeyError:
            raise DecodeError(
                "unknown-record-type", f"no reader schema for record {full_name}", schema_id
            ) from None
        if spec.full_name != full_name:
            raise DecodeError(
                "unknown-record-type", f"no reader schema for record {full_name}", schema_id
            )
        # Decode without schema resolution only when the writer schema is exactly the
        # reader schema. (The Parsing Canonical Form is not enough: it drops logical
        # types, decimal scales and defaults.)
        same = writer == spec.parsed
        return WriterSchema(
            schema_id=schema_id,
            full_name=full_name,
            event_type=event_type,
            writer=writer,
            reader=None if same else spec.parsed,
        )

    def decode(self, value: bytes | None) -> DecodedEvent:
        """Bytes → typed event. Raises DecodeError (or EventValidationError) on bad input."""
        if value and value[0] != MAGIC_BYTE:
            raise DecodeError("no-magic-byte", f"first byte is {value[0]:#04x}, expected 0x00")
        if not value or len(value) < HEADER.size:
            raise DecodeError(
                "too-short", f"{len(value or b'')} bytes, expected at least {HEADER.size}"
            )
        schema_id: int = HEADER.unpack_from(value)[1]
        schema = self.writer_schema(schema_id)
        buffer = io.BytesIO(value)
        buffer.seek(HEADER.size)
        try:
            record = fastavro.schemaless_reader(buffer, schema.writer, schema.reader)
        except Exception as exc:
            # fastavro signals a short body with EOFError or IndexError (mid-varint), and
            # also uses IndexError for a union branch out of range: where the reader
            # stopped tells them apart.
            if buffer.tell() >= len(value):
                raise DecodeError(
                    "truncated-body", f"body ended early ({type(exc).__name__}: {exc})", schema_id
                ) from None
            raise DecodeError(
                "bad-body",
                f"malformed Avro at byte {buffer.tell()} ({type(exc).__name__}: {exc})",
                schema_id,
            ) from None
        if buffer.tell() != len(value):
            raise DecodeError(
                "trailing-bytes", f"{len(value) - buffer.tell()} bytes after the record", schema_id
            )
        cls = EVENT_TYPES[schema.event_type]
        if not isinstance(record, dict):
            raise DecodeError("bad-body", "record is not a map", schema_id)
        try:
            event = cls.from_record(record)
        except EventValidationError:
            raise
        except (TypeError, ValueError) as exc:
            raise DecodeError("bad-body", str(exc), schema_id) from None
        return DecodedEvent(event=event, schema_id=schema_id)  # type: ignore[arg-type]


def _full_name(raw: Any, schema_id: int) -> str:
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise DecodeError("unknown-record-type", "writer schema is not a record", schema_id)
    name = str(raw.get("name", ""))
    namespace = raw.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


SUBJECT_NOT_FOUND = 40401
SCHEMA_NOT_FOUND = 40403
"""Confluent error codes of a 404 that names a missing subject, or schema id. Any other
404 (no error code) comes from something that is not the registry's API: a wrong URL."""


def is_not_found(exc: SchemaRegistryError, error_code: int) -> bool:
    """A registry's own "not found" answer with ``error_code`` (never a bare 404)."""
    return exc.http_status_code == 404 and exc.error_code == error_code


def make_registry_client(conf: Mapping[str, str | int]) -> SchemaRegistryClient:
    """confluent-kafka's registry client from :meth:`Settings.registry_config`.

    Settings the client refuses when it is built (a CA file it cannot read, malformed
    basic-auth user info) are a :class:`ConfigError`.
    """
    try:
        return SchemaRegistryClient(dict(conf))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            f"schema registry client settings refused ({cause}); check SCHEMA_REGISTRY_URL, "
            "SCHEMA_REGISTRY_SSL_CA_LOCATION and SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"
        ) from None
