"""The peer: the order-state job as an idiomatic Quix Streams 3.28 application.

Run by ``bench/materialize.py`` with the peer's own interpreter (Quix Streams 3.28.1
needs confluent-kafka < 2.13, this project pins 2.16.1, so it lives in its own
virtual environment: ``make bench-peer``). Self-contained: it imports nothing from
shopstream.

What it does, the way the Quix documentation writes such a job: Avro values decoded
through the schema registry (Quix's ``AvroDeserializer``), each order's status kept
in the application's RocksDB state (``stateful=True``), illegal transitions skipped,
and the status upserted into PostgreSQL by Quix's ``PostgreSQLSink``
(``upsert_on_primary_key``) at each checkpoint; at-least-once (Quix's default). It
does less than order-state: no lines, no history, no event-id deduplication, no
payment check, no dead letters.

    python bench/quix_peer.py CONFIG.json     # writes {"events", "seconds", "cpu"} back into it
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from typing import Any

from quixstreams import Application, State
from quixstreams.models.serializers.avro import AvroDeserializer
from quixstreams.models.serializers.schema_registry import SchemaRegistryClientConfig
from quixstreams.sinks.community.postgresql import PostgreSQLSink

#: event type -> (statuses it may be applied in, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str | None], str]] = {
    "OrderCreated": (frozenset({None}), "PENDING_PAYMENT"),
    "OrderPaid": (frozenset({"PENDING_PAYMENT"}), "PAID"),
    "OrderConfirmed": (frozenset({"PAID"}), "CONFIRMED"),
    "OrderShipped": (frozenset({"CONFIRMED"}), "SHIPPED"),
    "OrderCancelled": (frozenset({"PENDING_PAYMENT", "PAID", "CONFIRMED"}), "CANCELLED"),
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    path = sys.argv[1]
    with open(path, encoding="utf-8") as file:
        config: dict[str, Any] = json.load(file)
    first: list[float] = []

    def transition(
        value: dict[str, Any], key: Any, _timestamp: int, headers: Any, state: State
    ) -> dict[str, Any] | None:
        if not first:
            first.extend((time.perf_counter(), cpu_seconds()))
        event_type = dict(headers or ()).get("event_type", b"").decode()
        allowed, target = TRANSITIONS[event_type]
        if state.get("status") not in allowed:
            return None  # illegal transition: skipped
        state.set("status", target)
        return {"order_id": value["order_id"], "status": target, "updated_at": value["occurred_at"]}

    with tempfile.TemporaryDirectory() as state_dir:
        app = Application(
            broker_address=config["bootstrap"],
            consumer_group=config["group"],
            auto_offset_reset="earliest",
            state_dir=state_dir,
            loglevel="WARNING",
        )
        deserializer = AvroDeserializer(
            schema_registry_client_config=SchemaRegistryClientConfig(url=config["registry"])
        )
        topic = app.topic(config["topic"], key_deserializer="str", value_deserializer=deserializer)
        sdf = app.dataframe(topic)
        sdf = sdf.apply(transition, stateful=True, metadata=True).filter(
            lambda row: row is not None
        )
        sdf.sink(
            PostgreSQLSink(
                host=config["host"],
                port=config["port"],
                dbname=config["dbname"],
                user=config["user"],
                password=config["password"],
                table_name="quix_order_status",
                primary_key_columns="order_id",
                upsert_on_primary_key=True,
                include_metadata=False,
            )
        )
        app.run(count=config["events"], timeout=60, collect=False)
    config.update(seconds=time.perf_counter() - first[0], cpu=cpu_seconds() - first[1], done=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(config, file)


if __name__ == "__main__":
    main()
