"""Poison events: events the schema allows and the database refuses.

* :func:`install_refusal_trigger` adds a trigger to a projection table that refuses
  one customer id (:data:`REFUSED_CUSTOMER`), on SQLite and PostgreSQL alike: a
  refusal that no event validation can foresee (the reference model in
  :mod:`tests.support.reference` knows it);
* :func:`raw_avro` encodes a record as the producer would, without the event
  classes' validation, to send values the schema allows but the database refuses
  (a text longer than its column, a NUL character, a sum beyond NUMERIC).
"""

from __future__ import annotations

import copy
import dataclasses
import io
from collections.abc import Sequence
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema
from sqlalchemy import Engine, text

from schemas import load_catalog
from shopstream.config import Settings
from shopstream.events import DomainEvent
from shopstream.serde import HEADER, MAGIC_BYTE, make_registry_client

REFUSED_CUSTOMER = "refused-by-db-trigger"
"""Rows with this customer id are refused by the trigger (SQLSTATE 23514 on PostgreSQL,
SQLITE_CONSTRAINT_TRIGGER on SQLite)."""

TRIGGER_MESSAGE = "customer refused by the test trigger"


def install_refusal_trigger(engine: Engine, table: str) -> None:
    """Make ``table`` refuse inserted rows whose ``customer_id`` is REFUSED_CUSTOMER."""
    name = f"refuse_{table}"
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text(
                    f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.customer_id = '{REFUSED_CUSTOMER}' THEN "
                    f"RAISE EXCEPTION '{TRIGGER_MESSAGE}' USING ERRCODE = 'check_violation'; "
                    "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {name}()"
                )
            )
        else:
            connection.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                    f"WHEN NEW.customer_id = '{REFUSED_CUSTOMER}' "
                    f"BEGIN SELECT RAISE(ABORT, '{TRIGGER_MESSAGE}'); END"
                )
            )


def raw_avro(settings: Settings, event_type: str, record: dict[str, Any]) -> bytes:
    """``record`` as Confluent-framed Avro with the registered schema of ``event_type``
    (registered here when missing), with no validation beyond the schema's."""
    spec = load_catalog().with_topic_prefix(settings.shopstream_topic_prefix).get(event_type)
    registry = make_registry_client(settings.registry_config())
    schema_id = registry.register_schema(spec.subject(), Schema(spec.schema_str, "AVRO"))
    buffer = io.BytesIO()
    buffer.write(HEADER.pack(MAGIC_BYTE, schema_id))
    fastavro.schemaless_writer(buffer, spec.parsed, record)
    return buffer.getvalue()


def refuse_customers(events: Sequence[DomainEvent], every: int) -> list[DomainEvent]:
    """``events`` with every ``every``-th customer (in order of first appearance) renamed
    to :data:`REFUSED_CUSTOMER`: their carts and orders become poison for the trigger."""
    order: dict[str, int] = {}
    renamed: list[DomainEvent] = []
    for event in events:
        customer = getattr(event, "customer_id", None)
        refused = customer is not None and order.setdefault(customer, len(order)) % every == 0
        renamed.append(_with_customer(event, REFUSED_CUSTOMER) if refused else event)
    return renamed


def unvalidated(event: DomainEvent, **changes: Any) -> DomainEvent:
    """A copy of ``event`` with ``changes``, without the event classes' validation (the
    refusal under test must come from the database, whatever validation accepts)."""
    changed = copy.copy(event)
    for name, value in changes.items():
        object.__setattr__(changed, name, value)
    return changed


def _with_customer(event: DomainEvent, customer_id: str) -> DomainEvent:
    """``event`` (one with a ``customer_id``) for another customer."""
    changed: DomainEvent = dataclasses.replace(event, customer_id=customer_id)  # type: ignore[arg-type]
    return changed
