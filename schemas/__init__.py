"""The Avro schemas of every shopstream event, and their loader.

Each event type has one ``.avsc`` file under ``schemas/avro/<aggregate>/``. The loader
parses them once with fastavro and knows, for each event type, the topic it lives on
and the field that keys it (so every cart's and every order's events stay in order
on one partition).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

AVRO_DIR = Path(__file__).parent / "avro"
HISTORY_DIR = AVRO_DIR / "history"

CART_TOPIC = "cart-events"
ORDER_TOPIC = "order-events"
DLQ_SUFFIX = ".dlq"
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")

#: namespace → (topic, key field): the routing of every aggregate.
ROUTES: Mapping[str, tuple[str, str]] = {
    "shopstream.cart": (CART_TOPIC, "cart_id"),
    "shopstream.order": (ORDER_TOPIC, "order_id"),
}


@dataclass(frozen=True)
class EventSchema:
    """One event type's schema, where it is published and what keys it."""

    name: str
    """Record name, also the ``event_type`` header: ``OrderCreated``."""
    full_name: str
    """Namespaced record name: ``shopstream.order.OrderCreated``."""
    topic: str
    key_field: str
    schema: dict[str, Any]
    """The schema as written in its ``.avsc`` file."""
    parsed: Any
    """fastavro's parsed form, ready for schemaless_writer/reader."""

    @property
    def schema_str(self) -> str:
        return json.dumps(self.schema, separators=(",", ":"))

    def subject(self) -> str:
        """Registry subject under TopicRecordNameStrategy: ``<topic>-<full name>``."""
        return f"{self.topic}-{self.full_name}"


@dataclass(frozen=True)
class SchemaCatalog:
    """Every event schema, looked up by record name, full name, or topic."""

    by_name: Mapping[str, EventSchema]

    def __iter__(self) -> Iterator[EventSchema]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def get(self, name: str) -> EventSchema:
        """The schema of event type ``name`` (short or full name); KeyError if unknown."""
        short = name.rsplit(".", 1)[-1]
        return self.by_name[short]

    @property
    def topics(self) -> list[str]:
        return sorted({schema.topic for schema in self})

    def with_topic_prefix(self, prefix: str) -> SchemaCatalog:
        """The same schemas on topics ``<prefix><topic>``, so under subjects
        ``<prefix><topic>-<full name>``: an isolated set of topics and subjects
        (a test, a staging tenant) on a shared cluster and registry."""
        if not prefix:
            return self
        if not _TOPIC_CHARS.fullmatch(prefix):
            raise ValueError(f"topic prefix {prefix!r}: use only letters, digits, '.', '_', '-'")
        return SchemaCatalog(
            by_name={
                name: replace(spec, topic=prefix + spec.topic)
                for name, spec in self.by_name.items()
            }
        )


def _without_uuid_logical_type(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("logicalType") == "uuid" and node.get("type") == "string":
            return "string"
        return {key: _without_uuid_logical_type(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_without_uuid_logical_type(item) for item in node]
    return node


def parse_for_codec(raw: Any) -> Any:
    """fastavro's parsed form of ``raw`` for encoding and decoding.

    The ``uuid`` logical type is read as its underlying ``string``: the bytes on the
    wire are the same, and building ``uuid.UUID`` objects would more than double the
    cost of decoding an event (event ids stay strings in our typed events, which
    check their UUID form themselves).
    """
    return fastavro.parse_schema(_without_uuid_logical_type(raw))


def parse_schema_file(path: Path) -> tuple[dict[str, Any], Any]:
    """Read an ``.avsc`` file and parse it for the codec (see :func:`parse_for_codec`)."""
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return raw, parse_for_codec(raw)


def load_event_schema(path: Path) -> EventSchema:
    """One event schema from its ``.avsc`` file (e.g. an old version under ``history/``)."""
    raw, parsed = parse_schema_file(path)
    namespace = raw["namespace"]
    topic, key_field = ROUTES[namespace]
    field_names = {field["name"] for field in raw["fields"]}
    if key_field not in field_names:
        raise ValueError(f"{path.name}: key field {key_field!r} missing")
    return EventSchema(
        name=raw["name"],
        full_name=f"{namespace}.{raw['name']}",
        topic=topic,
        key_field=key_field,
        schema=raw,
        parsed=parsed,
    )


@cache
def load_catalog(avro_dir: Path = AVRO_DIR) -> SchemaCatalog:
    """Parse every event schema under ``avro_dir`` (once per directory)."""
    schemas = [
        load_event_schema(path)
        for path in sorted(avro_dir.glob("*/*.avsc"))
        if path.parent.name != HISTORY_DIR.name
    ]
    return SchemaCatalog(by_name={schema.name: schema for schema in schemas})


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``: ``order-events`` → ``order-events.dlq``."""
    return f"{topic}{DLQ_SUFFIX}"


def avro_type_text(avro_type: Any) -> str:
    """A short, readable form of an Avro type."""
    if isinstance(avro_type, str):
        return avro_type
    if isinstance(avro_type, list):
        branches = [avro_type_text(t) for t in avro_type if t != "null"]
        text = " | ".join(branches)
        return f"{text}?" if "null" in avro_type else text
    logical = avro_type.get("logicalType")
    if logical == "decimal":
        return f"decimal({avro_type['precision']},{avro_type['scale']})"
    if logical:
        return str(logical)
    if avro_type.get("type") == "array":
        return f"array<{avro_type_text(avro_type['items'])}>"
    if avro_type.get("type") == "record":
        return str(avro_type["name"])
    return str(avro_type.get("type"))
