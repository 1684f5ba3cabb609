"""THE one-line description of a Kafka (librdkafka) error, for messages and logs, and
which errors are worth retrying."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException


def describe_kafka_error(error: BaseException | KafkaError) -> str:
    """``NAME: description`` of a librdkafka error (bare or raised), on one line."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        error = error.args[0]
    if isinstance(error, KafkaError):
        return " ".join(f"{error.name()}: {error.str()}".split())
    return " ".join(str(error).split())


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
