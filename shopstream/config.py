"""One typed, frozen settings object, read from the environment (12-factor).

CLI flags override environment variables by building a new object with
:meth:`Settings.with_overrides`. Secrets are :class:`pydantic.SecretStr`, so they
never appear in ``repr``, logs or exception messages; :meth:`Settings.masked`
is what ``shopstream config show`` prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from platformdirs import user_cache_dir
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from shopstream.errors import ConfigError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]

DEFAULT_KAFKA_PORT = 9092
DEFAULT_REGISTRY_PORT = 8081
DEFAULT_REGISTRY_URL = f"http://localhost:{DEFAULT_REGISTRY_PORT}/apis/ccompat/v7"
MASK = "****"
POSTGRES_CONNECT_TIMEOUT_S = 5
POSTGRES_KEEPALIVE_INTERVAL_S = 5
POSTGRES_KEEPALIVE_COUNT = 3


def default_cache_dir() -> Path:
    return Path(user_cache_dir("shopstream"))


class Settings(BaseSettings):
    """Effective configuration of every shopstream command and daemon."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_prefix="")

    kafka_bootstrap_servers: str = Field(
        default=f"localhost:{DEFAULT_KAFKA_PORT}", description="Kafka bootstrap servers"
    )
    schema_registry_url: str = Field(
        default=DEFAULT_REGISTRY_URL, description="Confluent-compatible registry URL"
    )
    database_url: str = Field(
        default="sqlite:///shopstream.db", description="SQLAlchemy URL of the read models"
    )

    database_statement_timeout_ms: int = Field(
        default=60_000,
        ge=0,
        description="PostgreSQL: statement_timeout of every connection, in ms (0: none). "
        "Keeps a hung database from stalling a consumer past Kafka's max.poll.interval.ms "
        "(300 s): the statement fails and the batch is retried. Migrations and "
        "'consume rebuild' lift it for their own long statements.",
    )
    database_keepalives_idle_s: int = Field(
        default=10,
        ge=1,
        description="PostgreSQL: seconds a connection may be idle before TCP keepalive "
        "probes start (then every 5 s, 3 probes; unacknowledged writes give up after "
        "the same total), so a vanished server or network is noticed in about 25 s.",
    )

    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_ssl_certificate_location: str | None = None
    kafka_ssl_key_location: str | None = None
    kafka_ssl_key_password: SecretStr | None = None
    schema_registry_basic_auth_user_info: SecretStr | None = None
    schema_registry_ssl_ca_location: str | None = None

    shopstream_console_token: SecretStr | None = Field(
        default=None,
        description="token the web console asks for; needed to listen beyond loopback",
    )

    shopstream_topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="prefix of every topic and consumer group id (isolated tenants, tests)",
    )

    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    shopstream_cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="where the local stack keeps fetched jars, data and logs",
    )

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _upper_protocol(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @field_validator("schema_registry_url")
    @classmethod
    def _check_registry(cls, value: str) -> str:
        shown = mask_url_password(value)
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, got {shown!r}")
        try:
            parts = urlsplit(value)
            host, _ = parts.hostname, parts.port  # reading the port checks it
        except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
            raise ValueError(f"not a URL ({exc}): {shown!r}") from None
        if not host:
            raise ValueError(f"no host in {shown!r}")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a SQLAlchemy URL (e.g. sqlite:///shopstream.db)") from None
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError(f"unsupported database {url.get_backend_name()!r}")
        return value

    # -- construction -------------------------------------------------------

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the environment, apply non-None overrides (CLI flags), validate."""
        given = {key: value for key, value in overrides.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None

    def with_overrides(self, **overrides: Any) -> Settings:
        given = {key: value for key, value in overrides.items() if value is not None}
        if not given:
            return self
        data = self.model_dump()
        data.update(given)
        try:
            return Settings.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None

    # -- client configuration ---------------------------------------------------

    def kafka_config(self) -> dict[str, str]:
        """librdkafka settings shared by producers, consumers and admin clients."""
        conf: dict[str, str] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_ca_location:
            conf["ssl.ca.location"] = self.kafka_ssl_ca_location
        if self.kafka_ssl_certificate_location:
            conf["ssl.certificate.location"] = self.kafka_ssl_certificate_location
        if self.kafka_ssl_key_location:
            conf["ssl.key.location"] = self.kafka_ssl_key_location
        if self.kafka_ssl_key_password:
            conf["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        return conf

    def registry_config(self) -> dict[str, str]:
        """Settings for confluent-kafka's SchemaRegistryClient."""
        conf: dict[str, str] = {"url": self.schema_registry_url}
        if self.schema_registry_basic_auth_user_info:
            conf["basic.auth.user.info"] = (
                self.schema_registry_basic_auth_user_info.get_secret_value()
            )
        if self.schema_registry_ssl_ca_location:
            conf["ssl.ca.location"] = self.schema_registry_ssl_ca_location
        return conf

    def postgres_connect_args(self) -> dict[str, Any]:
        """psycopg/libpq connection parameters: connect timeout, statement timeout and
        TCP keepalives (see ``database_statement_timeout_ms``, ``database_keepalives_idle_s``)."""
        idle = self.database_keepalives_idle_s
        return {
            "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={self.database_statement_timeout_ms}",
            "keepalives": 1,
            "keepalives_idle": idle,
            "keepalives_interval": POSTGRES_KEEPALIVE_INTERVAL_S,
            "keepalives_count": POSTGRES_KEEPALIVE_COUNT,
            "tcp_user_timeout": 1000
            * (idle + POSTGRES_KEEPALIVE_INTERVAL_S * POSTGRES_KEEPALIVE_COUNT),
        }

    def topic(self, name: str) -> str:
        """The physical topic of logical topic ``name`` (``SHOPSTREAM_TOPIC_PREFIX`` + name)."""
        return self.shopstream_topic_prefix + name

    def kafka_group(self, group_id: str) -> str:
        """The Kafka consumer group id of project group ``group_id``."""
        return self.shopstream_topic_prefix + group_id

    # -- display ------------------------------------------------------------

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """``repr``/``str`` (and so log lines) show URLs without their passwords."""
        for name, value in super().__repr_args__():
            is_url = name in {"database_url", "schema_registry_url"} and isinstance(value, str)
            yield name, mask_url_password(value) if is_url else value

    def endpoint_env(self) -> dict[str, str]:
        """Environment variables that point a child process (a daemon) at the same
        broker (with its security settings), registry, database and topic prefix."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.schema_registry_url,
            "DATABASE_URL": self.database_url,
            "SHOPSTREAM_TOPIC_PREFIX": self.shopstream_topic_prefix,
        }
        for name in _CONNECTION_SECRETS_AND_TLS:  # a secured broker needs them too
            value = getattr(self, name)
            if value is not None:
                text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
                env[name.upper()] = text
        return env

    def masked(self) -> dict[str, str]:
        """Every setting as text, secrets replaced by a mask, URLs without passwords."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                text = MASK
            elif value is None:
                text = ""
            else:
                text = str(value)
            shown[name.upper()] = text
        shown["DATABASE_URL"] = mask_url_password(self.database_url)
        shown["SCHEMA_REGISTRY_URL"] = mask_url_password(self.schema_registry_url)
        return shown


_CONNECTION_SECRETS_AND_TLS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_ca_location",
    "kafka_ssl_certificate_location",
    "kafka_ssl_key_location",
    "kafka_ssl_key_password",
    "schema_registry_basic_auth_user_info",
    "schema_registry_ssl_ca_location",
)


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^\s/:@]*):[^\s/@]*@")


def mask_passwords_in(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` as ``scheme://user:****@`` (error
    messages and log lines quote URLs from settings, clients and exceptions)."""
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}:{MASK}@", text)


def mask_url_password(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:****@h/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, hostpart = rest.rpartition("@")
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{MASK}@{hostpart}"


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad setting by its environment variable, never its value."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(loc) for loc in error["loc"]) or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "literal_error":
            message = f"must be one of {error.get('ctx', {}).get('expected', '')}"
        parts.append(f"{field.upper()}: {message}")
    return "invalid configuration: " + "; ".join(parts)
