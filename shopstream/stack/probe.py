"""Does the *configured* broker, registry and database answer? (``shopstream stack check``)

These talk to whatever the settings point at, local stack or not, and turn every
failure into a one-line :class:`ConnectionFailed` with no secret in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from shopstream.config import Settings, mask_url_password
from shopstream.errors import ConnectionFailed
from shopstream.kafka.clients import build_client
from shopstream.registry.admin import check_registry


@dataclass(frozen=True)
class ProbeResult:
    name: str
    target: str
    detail: str


def _first_line(exc: BaseException) -> str:
    """A short cause: librdkafka's error text, else the first line of the message."""
    if exc.args and isinstance(exc.args[0], KafkaError):
        return str(exc.args[0].str())
    text_ = str(exc).strip().splitlines()
    return text_[0][:200] if text_ else type(exc).__name__


def probe_kafka(settings: Settings, timeout: float = 5.0) -> ProbeResult:
    """A metadata request to the configured bootstrap servers."""
    target = settings.kafka_bootstrap_servers
    admin = build_client(AdminClient, {**settings.kafka_config(), "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ConnectionFailed(
            f"Kafka at {target} did not answer within {timeout:g} s ({_first_line(exc)}); "
            "start it (shopstream stack up) or fix KAFKA_BOOTSTRAP_SERVERS"
        ) from None
    return ProbeResult("kafka", target, f"{len(metadata.brokers)} broker(s)")


def probe_registry(settings: Settings, timeout: float = 5.0) -> ProbeResult:
    """List the subjects of the configured Confluent-compatible registry."""
    subjects = check_registry(settings, timeout_s=max(1, int(timeout)))
    return ProbeResult(
        "registry", mask_url_password(settings.schema_registry_url), f"{subjects} subject(s)"
    )


def probe_database(settings: Settings, timeout: float = 5.0) -> ProbeResult:
    """Connect to the configured database (a SQLite file only needs its folder)."""
    url = make_url(settings.database_url)
    target = mask_url_password(settings.database_url)
    if url.get_backend_name() == "sqlite":
        folder = Path(url.database or ".").absolute().parent
        if not folder.is_dir():
            raise ConnectionFailed(f"SQLite folder {folder} does not exist; fix DATABASE_URL")
        return ProbeResult("database", target, "SQLite file")
    engine = create_engine(url, connect_args={"connect_timeout": max(1, int(timeout))})
    try:
        with engine.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar())
    except SQLAlchemyError as exc:
        cause = _first_line(getattr(exc, "orig", None) or exc)
        raise ConnectionFailed(
            f"database at {target} did not answer ({cause}); "
            "start it (shopstream stack up --postgres) or fix DATABASE_URL"
        ) from None
    finally:
        engine.dispose()
    return ProbeResult("database", target, f"PostgreSQL {version}")
