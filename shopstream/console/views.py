"""What the console's pages ask for on demand, each a bounded read.

- dead letters: the last ``limit`` of each DLQ partition, decoded (or hex and the
  decode error), with headers, reason and whether they were redriven;
- an order's timeline (:func:`~shopstream.inspection.timeline.order_timeline`) over the
  last ``TIMELINE_WINDOW`` offsets of each partition it reads;
- schemas: the registry's subjects (versions, ids, compatibility) and the catalog of
  events this code knows (topic, key, fields).
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from schemas import CART_TOPIC, ORDER_TOPIC, avro_type_text, dlq_topic, load_catalog
from shopstream.config import Settings
from shopstream.db.engine import describe_db_error
from shopstream.db.models import DlqRedrive
from shopstream.errors import ConnectionFailed
from shopstream.inspection.cluster import Cluster
from shopstream.inspection.db_offsets import read_only_engine
from shopstream.inspection.decode import MessageDecoder
from shopstream.inspection.dlq_reader import DeadLetter
from shopstream.inspection.offset_spec import FromEnd
from shopstream.inspection.peek import MessageFilter, PeekRequest, peek
from shopstream.inspection.timeline import order_timeline
from shopstream.registry.lookup import RegistryBrowser, registry_failure
from shopstream.serde import make_registry_client

TIMELINE_WINDOW = 500_000
DEAD_LETTERS_SHOWN = 50
KEY_SEARCH_WINDOW = 10_000


def dead_letters(
    settings: Settings, limit: int = DEAD_LETTERS_SHOWN, key: str | None = None
) -> list[dict[str, Any]]:
    """The latest ``limit`` dead letters of both DLQs, newest first, decoded; with
    ``key``, only that key's among the last ``KEY_SEARCH_WINDOW`` of each partition."""
    letters: list[DeadLetter] = []
    with Cluster(settings, timeout=5.0) as cluster:
        known = cluster.metadata().topics
    for logical in (ORDER_TOPIC, CART_TOPIC):
        topic = dlq_topic(settings.topic(logical))
        if topic not in known:
            continue
        request = PeekRequest(
            topic=topic,
            start=FromEnd(limit if key is None else KEY_SEARCH_WINDOW),
            only=MessageFilter(key=key),
        )
        with closing(peek(settings, request, timeout=5.0)) as stream:
            letters.extend(DeadLetter.from_message(message) for message in stream)
    letters.sort(
        key=lambda x: (x.message.timestamp_ms or 0, x.message.topic, x.message.offset), reverse=True
    )
    shown = letters[:limit]
    redriven = _redriven(settings, shown)
    prefix = settings.shopstream_topic_prefix
    out = []
    for letter in shown:
        m = letter.message
        data = letter.to_json()
        data["topic"] = m.topic.removeprefix(prefix)
        data["headers"] = m.headers
        data["timestamp_ms"] = m.timestamp_ms
        data["redriven"] = redriven.get((m.topic, m.partition, m.offset))
        out.append(data)
    return out


def _redriven(
    settings: Settings, letters: list[DeadLetter]
) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Which of ``letters`` were redriven, and as which event where."""
    engine = read_only_engine(settings.database_url)
    if engine is None or not letters:
        return {}
    table = DlqRedrive.__table__
    c = table.c
    topics = sorted({letter.message.topic for letter in letters})
    try:
        with engine.connect() as connection:
            if not engine.dialect.has_table(connection, DlqRedrive.__tablename__):
                return {}
            rows = connection.execute(select(table).where(c.dlq_topic.in_(topics))).mappings()
            return {
                (row["dlq_topic"], row["dlq_partition"], row["dlq_offset"]): {
                    "event_id": row["event_id"],
                    "topic": row["topic"],
                    "partition": row["partition"],
                    "offset": row["offset"],
                    "at": row["redriven_at"].isoformat(),
                }
                for row in rows
            }
    except SQLAlchemyError as exc:
        raise ConnectionFailed(f"reading dlq_redrives failed: {describe_db_error(exc)}") from None
    finally:
        engine.dispose()


def timeline(
    settings: Settings, order_id: str, decoder: MessageDecoder | None = None
) -> dict[str, Any]:
    found = order_timeline(settings, order_id, window=TIMELINE_WINDOW, timeout=5.0, decoder=decoder)
    data: dict[str, Any] = _without_prefix(found.to_json(), settings.shopstream_topic_prefix)
    data["window"] = TIMELINE_WINDOW
    return data


def _without_prefix(data: Any, prefix: str) -> Any:
    """``data`` with the topic prefix taken off every ``topic`` (pages show logical names)."""
    if isinstance(data, dict):
        return {
            key: value.removeprefix(prefix)
            if key == "topic" and isinstance(value, str)
            else _without_prefix(value, prefix)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_without_prefix(item, prefix) for item in data]
    return data


def schemas(settings: Settings) -> dict[str, Any]:
    """Registry subjects of this prefix's topics, and the event catalog."""
    prefix = settings.shopstream_topic_prefix
    registry = make_registry_client(settings.registry_config())
    browser = RegistryBrowser(registry)
    ours = tuple(f"{settings.topic(topic)}-" for topic in (CART_TOPIC, ORDER_TOPIC))
    try:
        names = sorted(name for name in registry.get_subjects() if name.startswith(ours))
    except Exception as exc:
        raise registry_failure(exc, "listing subjects") from None
    subjects = [browser.subject(name).to_json() for name in names]
    catalog = []
    for spec in sorted(load_catalog().with_topic_prefix(prefix), key=lambda s: (s.topic, s.name)):
        catalog.append(
            {
                "event_type": spec.name,
                "full_name": spec.full_name,
                "topic": spec.topic.removeprefix(prefix),
                "key": spec.key_field,
                "subject": spec.subject(),
                "doc": spec.schema.get("doc", ""),
                "fields": [
                    {
                        "name": f["name"],
                        "type": avro_type_text(f["type"]),
                        "doc": f.get("doc", ""),
                    }
                    for f in spec.schema.get("fields", [])
                ],
            }
        )
    registered = {s["subject"] for s in subjects}
    for entry in catalog:
        entry["registered"] = entry["subject"] in registered
    return {"subjects": subjects, "catalog": catalog}
