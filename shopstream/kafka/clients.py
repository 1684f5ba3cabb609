"""Kafka client factories: producers, group consumers, assign-only readers, admin clients.

Every client is built from :meth:`Settings.kafka_config` (bootstrap servers and the
security settings passed through to librdkafka) plus the role's own settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from shopstream.config import Settings
from shopstream.errors import ConfigError, ConnectionFailed
from shopstream.kafka.errors import ConnectionErrors, describe_kafka_error

METADATA_TIMEOUT_S = 10.0

ClientT = TypeVar("ClientT")


def _quiet(conf: dict[str, Any]) -> dict[str, Any]:
    conf.setdefault("log_level", 2)
    return conf


MESSAGE_TIMEOUT_MS = 120_000
"""How long the producer keeps trying to deliver an event before reporting it failed."""


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Idempotent, acks=all producer settings (events stay in order per key)."""
    conf: dict[str, Any] = {
        **settings.kafka_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
    }
    conf.update(overrides)
    return _quiet(conf)


def build_client(client: Callable[[dict[str, Any]], ClientT], conf: dict[str, Any]) -> ClientT:
    """``client(conf)``; settings librdkafka refuses become a :class:`ConfigError`.

    librdkafka checks them when the client is built: a CA file it cannot read, a SASL
    mechanism it was not built with, SASL without a user name and password.
    """
    try:
        return client(conf)
    except KafkaException as exc:
        raise ConfigError(
            f"Kafka client settings refused ({describe_kafka_error(exc)}); "
            "check KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_*"
        ) from None


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    return build_client(Producer, producer_config(settings, **overrides))


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer that never auto-commits or auto-stores offsets."""
    conf: dict[str, Any] = {
        **settings.kafka_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
    }
    conf.update(overrides)
    return build_client(Consumer, _quiet(conf))


def make_reader(settings: Settings, **overrides: Any) -> Consumer:
    """A consumer for inspection: assign()-only, never commits, never joins a group.

    librdkafka needs a ``group.id`` to exist, but a consumer that only uses
    ``assign()`` and never commits does not join or create that group.
    """
    conf: dict[str, Any] = {
        **settings.kafka_config(),
        "group.id": "shopstream-inspect-never-joins",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }
    conf.update(overrides)
    return build_client(Consumer, _quiet(conf))


def make_admin(settings: Settings) -> AdminClient:
    return build_client(AdminClient, _quiet(dict(settings.kafka_config())))


def check_broker(settings: Settings, timeout: float = METADATA_TIMEOUT_S) -> None:
    """Raise ConnectionFailed unless a metadata request is answered in ``timeout`` s."""
    errors = ConnectionErrors()
    conf = _quiet({**settings.kafka_config(), "error_cb": errors})
    admin = build_client(AdminClient, conf)
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        admin.poll(0)  # serve the error callbacks that say why
        hint = errors.diagnose(conf)
        if hint is not None:
            raise ConnectionFailed(
                f"Kafka at {settings.kafka_bootstrap_servers} refused the connection: {hint}"
            ) from None
        raise ConnectionFailed(
            f"Kafka broker unreachable at {settings.kafka_bootstrap_servers} "
            f"({describe_kafka_error(exc)}); start it with 'shopstream stack up' "
            "or set KAFKA_BOOTSTRAP_SERVERS"
        ) from None
