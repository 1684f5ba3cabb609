"""The local stack: Kafka, Apicurio Registry and PostgreSQL as real local processes.

Typical use::

    stack = LocalStack(StackConfig.from_settings(settings))
    stack.up()
    print(stack.endpoints.bootstrap_servers)
    stack.kafka.stop(); stack.kafka.start()   # fault tests
    stack.down()
"""

from shopstream.stack.base import Part, PartStatus
from shopstream.stack.config import (
    APICURIO_VERSION,
    KAFKA_VERSION,
    StackConfig,
)
from shopstream.stack.local import LocalStack, PartReport, StackEndpoints

__all__ = [
    "APICURIO_VERSION",
    "KAFKA_VERSION",
    "LocalStack",
    "Part",
    "PartReport",
    "PartStatus",
    "StackConfig",
    "StackEndpoints",
]
