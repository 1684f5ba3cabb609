"""Kafka client factories and topic administration.

Every client is built from :meth:`Settings.kafka_config` (bootstrap servers and the
security settings passed through to librdkafka) plus the role's own settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas import CART_TOPIC, ORDER_TOPIC, dlq_topic
from shopstream.config import Settings
from shopstream.errors import ConfigError, ConnectionFailed, ShopstreamError

DEFAULT_PARTITIONS = 6
METADATA_TIMEOUT_S = 10.0

ClientT = TypeVar("ClientT")


def _log_cb(_level: int, _facility: str, _message: str) -> None:
    """Keep librdkafka's own log lines quiet; failures surface through our errors."""


def _quiet(conf: dict[str, Any]) -> dict[str, Any]:
    conf.setdefault("log_level", 2)
    return conf


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
        "message.timeout.ms": 120_000,
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
    admin = make_admin(settings)
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ConnectionFailed(
            f"Kafka broker unreachable at {settings.kafka_bootstrap_servers} "
            f"({describe_kafka_error(exc)}); start it with 'shopstream stack up' "
            "or set KAFKA_BOOTSTRAP_SERVERS"
        ) from None


def existing_topics(settings: Settings) -> set[str]:
    """Names of every topic in the cluster's metadata (ConnectionFailed if none answers).

    Never asks about one topic by name: a metadata request naming a missing topic can
    make a broker with ``auto.create.topics.enable`` create it.
    """
    try:
        return set(make_admin(settings).list_topics(timeout=METADATA_TIMEOUT_S).topics)
    except KafkaException as exc:
        raise ConnectionFailed(
            f"Kafka broker unreachable at {settings.kafka_bootstrap_servers} "
            f"({describe_kafka_error(exc)})"
        ) from None


_TRANSIENT_CODES = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def is_transient_kafka_error(exc: BaseException) -> bool:
    """A Kafka error worth retrying: the broker or network is unavailable right now."""
    if not isinstance(exc, KafkaException):
        return False
    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        return True  # librdkafka's own timeouts arrive as plain text
    return bool(error.retriable()) or error.code() in _TRANSIENT_CODES


def describe_kafka_error(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error: KafkaError = exc.args[0]
        return f"{error.name()}: {error.str()}"
    return " ".join(str(exc).split())


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def project_topics(
    partitions: int = DEFAULT_PARTITIONS, replication_factor: int = 1, prefix: str = ""
) -> list[TopicSpec]:
    """The event topics and their dead-letter topics (names prefixed with ``prefix``)."""
    specs = []
    for topic in (prefix + CART_TOPIC, prefix + ORDER_TOPIC):
        specs.append(TopicSpec(topic, partitions, replication_factor, {}))
        specs.append(TopicSpec(dlq_topic(topic), 1, replication_factor, {}))
    return specs


def create_topics(
    settings: Settings, specs: Iterable[TopicSpec], timeout: float = 30.0
) -> dict[str, str]:
    """Create topics that do not exist yet. Returns topic → 'created' | 'exists'."""
    check_broker(settings)
    admin = make_admin(settings)
    existing = set(admin.list_topics(timeout=METADATA_TIMEOUT_S).topics)
    outcome: dict[str, str] = {}
    wanted = []
    for spec in specs:
        if spec.name in existing:
            outcome[spec.name] = "exists"
        else:
            wanted.append(
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor,
                    config=spec.config,
                )
            )
    if not wanted:
        return outcome
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            outcome[name] = "created"
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                outcome[name] = "exists"
            else:
                raise ShopstreamError(
                    f"could not create topic {name}: {describe_kafka_error(exc)}"
                ) from None
    return outcome
