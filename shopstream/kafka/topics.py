"""The project's topics (:class:`TopicSpec`) and their creation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from schemas import CART_TOPIC, ORDER_TOPIC, dlq_topic
from shopstream.config import Settings
from shopstream.errors import ConnectionFailed, ShopstreamError
from shopstream.kafka.clients import METADATA_TIMEOUT_S, check_broker, make_admin
from shopstream.kafka.errors import describe_kafka_error

DEFAULT_PARTITIONS = 6


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
