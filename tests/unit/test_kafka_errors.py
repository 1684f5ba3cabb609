"""Which Kafka errors the runtime waits out (retries, pauses) and which stop a group."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from shopstream.kafka.errors import is_transient_kafka_error

LEADERSHIP_MOVING = [
    # seen by the failover test: the admin client's list-offsets at an assignment,
    # while a killed broker's partitions got new leaders (no retriable flag set)
    KafkaError.FENCED_LEADER_EPOCH,
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.OFFSET_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_ENOUGH_REPLICAS,
]


@pytest.mark.parametrize("code", LEADERSHIP_MOVING)
def test_a_partition_changing_leader_is_waited_out(code: int) -> None:
    assert is_transient_kafka_error(KafkaException(KafkaError(code)))


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.INVALID_CONFIG,
    ],
)
def test_a_wrong_setting_or_missing_topic_is_not(code: int) -> None:
    assert not is_transient_kafka_error(KafkaException(KafkaError(code)))


def test_only_kafka_exceptions_are_kafka_errors() -> None:
    assert not is_transient_kafka_error(RuntimeError("no"))
