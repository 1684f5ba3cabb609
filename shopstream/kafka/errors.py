"""THE one-line description of a Kafka (librdkafka) error, for messages and logs."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException


def describe_kafka_error(error: BaseException | KafkaError) -> str:
    """``NAME: description`` of a librdkafka error (bare or raised), on one line."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        error = error.args[0]
    if isinstance(error, KafkaError):
        return " ".join(f"{error.name()}: {error.str()}".split())
    return " ".join(str(error).split())
