"""SCRAM users of the secured listener, created through the Kafka admin API.

The password never appears on a command line or in a log: it goes from the 0600
``client.env`` straight into an AlterUserScramCredentials request on the loopback
plaintext listener.
"""

from __future__ import annotations

import secrets

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from shopstream.errors import StackError
from shopstream.stack.security import SCRAM_ITERATIONS, SCRAM_USER

ADMIN_TIMEOUT_S = 30.0


def ensure_scram_user(bootstrap_servers: str, password: str, user: str = SCRAM_USER) -> None:
    """Create (or reset) ``user`` with ``password`` for SCRAM-SHA-512."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    upsert = UserScramCredentialUpsertion(
        user,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
        password.encode(),
        secrets.token_bytes(32),
    )
    futures = admin.alter_user_scram_credentials([upsert], request_timeout=ADMIN_TIMEOUT_S)
    try:
        for future in futures.values():
            future.result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        raise StackError(f"could not create the SCRAM user {user}: {exc.args[0]}") from None
