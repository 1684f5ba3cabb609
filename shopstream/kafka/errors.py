"""THE one-line description of a Kafka (librdkafka) error, for messages and logs;
which errors are worth retrying; and why a connection failed: librdkafka reports a
refused SASL login, an untrusted certificate or a TLS listener spoken to in plaintext
only through its error callback (the failed request just says "transport failure");
:class:`ConnectionErrors` collects those errors and :func:`diagnose` names the setting
to fix (never with a secret)."""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException


def describe_kafka_error(error: BaseException | KafkaError) -> str:
    """``NAME: description`` of a librdkafka error (bare or raised), on one line."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        error = error.args[0]
    if isinstance(error, KafkaError):
        return " ".join(f"{error.name()}: {error.str()}".split())
    return " ".join(str(error).split())


class ConnectionErrors:
    """An ``error_cb`` for librdkafka that keeps what it was told."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []

    def __call__(self, error: KafkaError) -> None:
        self.errors.append(error)

    def diagnose(self, conf: Mapping[str, object]) -> str | None:
        return diagnose(conf, self.errors)


def _bootstrap_ports_accept(bootstrap: str) -> bool:
    """True when every bootstrap server accepts a TCP connection."""
    from shopstream.stack.process import port_accepts  # only on this failure path

    servers = [server.strip().rpartition(":") for server in bootstrap.split(",")]
    return all(
        port.isdigit() and port_accepts(int(port), host.strip("[]")) for host, _, port in servers
    )


def diagnose(conf: Mapping[str, object], errors: list[KafkaError]) -> str | None:
    """A hint naming the setting to fix, or None when nothing points at one."""
    codes = {error.code() for error in errors}
    if KafkaError._AUTHENTICATION in codes:
        return (
            "SASL authentication failed (user name, password or mechanism refused); "
            "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
        )
    if KafkaError._SSL in codes:
        texts = " ".join(str(error.str()) for error in errors if error.code() == KafkaError._SSL)
        if "certificate verify failed" in texts:
            return (
                "TLS handshake failed: the broker's certificate is not signed by a trusted "
                "CA; check KAFKA_SSL_CA_LOCATION"
            )
        return "TLS handshake failed; check KAFKA_SECURITY_PROTOCOL and KAFKA_SSL_*"
    protocol = str(conf.get("security.protocol", "PLAINTEXT")).upper()
    bootstrap = str(conf.get("bootstrap.servers", ""))
    if (
        protocol in {"PLAINTEXT", "SASL_PLAINTEXT"}
        and KafkaError._ALL_BROKERS_DOWN in codes
        and _bootstrap_ports_accept(bootstrap)
    ):
        return (
            f"the brokers accept TCP connections but drop every {protocol} request "
            "(a TLS listener?); check KAFKA_SECURITY_PROTOCOL"
        )
    return None


_TRANSIENT_CODES = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        # a partition's leadership moving (a broker failed): the admin client's
        # list-offsets futures report these without librdkafka's retriable flag
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.OFFSET_NOT_AVAILABLE,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.KAFKA_STORAGE_ERROR,
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
