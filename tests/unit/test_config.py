"""Settings: environment parsing, flags over env, bad values, and secrets kept secret.

The CLI cases run the real ``shopstream`` executable, because what a person sees
(one ``error:`` line, the exit code, no traceback) is what is under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from shopstream.config import Settings
from shopstream.errors import ConfigError, ConnectionFailed
from shopstream.logs import configure_logging, get_logger
from shopstream.stack.probe import probe_database
from shopstream.stack.process import free_ports

SHOPSTREAM = str(Path(sys.executable).with_name("shopstream"))

SECRETS = {
    "KAFKA_SASL_PASSWORD": "sasl-pw-3f9a1c",
    "KAFKA_SSL_KEY_PASSWORD": "keypw-77e0b2",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "registry-user:reg-pw-5d1e44",
}
DB_PASSWORD = "db-pw-a81c09"
SECRET_WORDS = ["sasl-pw-3f9a1c", "keypw-77e0b2", "reg-pw-5d1e44", DB_PASSWORD]

SETTING_VARS = [
    "KAFKA_BOOTSTRAP_SERVERS",
    "SCHEMA_REGISTRY_URL",
    "DATABASE_URL",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
    "KAFKA_SSL_KEY_PASSWORD",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
    "LOG_LEVEL",
    "LOG_FORMAT",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the defaults, whatever the developer's shell exports."""
    for name in SETTING_VARS:
        monkeypatch.delenv(name, raising=False)


def _env(**values: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in SETTING_VARS}
    env.update(values)
    return env


def _run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPSTREAM, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _assert_one_error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- parsing -------------------------------------------------------------------


def test_defaults_point_at_the_local_stack() -> None:
    settings = Settings.load()
    assert settings.kafka_bootstrap_servers == "localhost:9092"
    assert settings.schema_registry_url == "http://localhost:8081/apis/ccompat/v7"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.kafka_config() == {
        "bootstrap.servers": "localhost:9092",
        "security.protocol": "PLAINTEXT",
    }


def test_environment_is_parsed_into_client_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "b1:9092,b2:9093")
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "https://registry.example:8443/apis/ccompat/v7/")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://shop@db:5432/shop")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "shop")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    monkeypatch.setenv("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "u:p")

    settings = Settings.load()

    assert settings.kafka_config() == {
        "bootstrap.servers": "b1:9092,b2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "shop",
        "sasl.password": "pw",
    }
    assert settings.registry_config() == {
        "url": "https://registry.example:8443/apis/ccompat/v7",
        "basic.auth.user.info": "u:p",
    }
    assert settings.database_url == "postgresql+psycopg://shop@db:5432/shop"


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "from-env:9092")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")

    settings = Settings.load(kafka_bootstrap_servers="from-flag:9093", database_url=None)

    assert settings.kafka_bootstrap_servers == "from-flag:9093"
    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.with_overrides(database_url="sqlite:///x.db").database_url == "sqlite:///x.db"


def test_cli_flags_override_the_environment() -> None:
    env = _env(KAFKA_BOOTSTRAP_SERVERS="from-env:9092", SCHEMA_REGISTRY_URL="http://env:1")
    result = _run(
        "--bootstrap-servers", "from-flag:9093", "config", "show", "--json", env=env
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["KAFKA_BOOTSTRAP_SERVERS"] == "from-flag:9093"
    assert shown["SCHEMA_REGISTRY_URL"] == "http://env:1"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "broker-without-port", "KAFKA_BOOTSTRAP_SERVERS"),
        ("KAFKA_BOOTSTRAP_SERVERS", "b1:9092,:9093", "KAFKA_BOOTSTRAP_SERVERS"),
        ("SCHEMA_REGISTRY_URL", "localhost:8081", "SCHEMA_REGISTRY_URL"),
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("DATABASE_URL", "mysql://u@h/db", "DATABASE_URL"),
        ("KAFKA_SECURITY_PROTOCOL", "TLS", "KAFKA_SECURITY_PROTOCOL"),
        ("KAFKA_SASL_MECHANISM", "MD5", "KAFKA_SASL_MECHANISM"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_bad_values_are_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    assert caught.value.exit_code == 2
    assert named in caught.value.message
    assert "\n" not in caught.value.message


# -- what a person sees on the command line -------------------------------------------


def test_cli_malformed_database_url_is_one_line_exit_2() -> None:
    result = _run("config", "show", env=_env(DATABASE_URL="postgresql+psycopg://u@h:notaport/d"))
    line = _assert_one_error_line(result, 2)
    assert "DATABASE_URL" in line


def test_cli_unknown_security_protocol_is_one_line_exit_2() -> None:
    result = _run("config", "show", env=_env(KAFKA_SECURITY_PROTOCOL="TLS"))
    line = _assert_one_error_line(result, 2)
    assert "KAFKA_SECURITY_PROTOCOL" in line
    assert "SASL_SSL" in line  # names the accepted values


def test_cli_unreachable_broker_is_one_line_exit_2() -> None:
    (port,) = free_ports(1)
    result = _run(
        "topics", "list", env=_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}"), timeout=120
    )
    line = _assert_one_error_line(result, ConnectionFailed.exit_code)
    assert ConnectionFailed.exit_code == 2
    assert f"127.0.0.1:{port}" in line


# -- secrets -------------------------------------------------------------------------


def _secret_env(database_url: str | None = None) -> dict[str, str]:
    url = database_url or f"postgresql+psycopg://shop:{DB_PASSWORD}@db.example:5432/shop"
    return {**SECRETS, "KAFKA_SASL_USERNAME": "shop", "DATABASE_URL": url}


def _assert_no_secret(text: str) -> None:
    for word in SECRET_WORDS:
        assert word not in text


@pytest.mark.parametrize("as_json", [False, True])
def test_config_show_never_prints_a_secret(as_json: bool) -> None:
    args = ["config", "show", "--json"] if as_json else ["config", "show"]
    result = _run(*args, env=_env(**_secret_env()))
    assert result.returncode == 0, result.stderr
    _assert_no_secret(result.stdout + result.stderr)
    assert "****" in result.stdout
    assert "shop:****@db.example" in result.stdout


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_log_lines_never_carry_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    for key, value in _secret_env().items():
        monkeypatch.setenv(key, value)
    settings = Settings.load()
    configure_logging("DEBUG", "json" if fmt == "json" else "console")
    try:
        log = get_logger("test")
        log.info("effective settings", settings=settings, **settings.masked())
        log.debug("as text", text=str(settings), representation=repr(settings))
    finally:
        structlog.reset_defaults()
    captured = capsys.readouterr()
    assert "effective settings" in captured.err
    _assert_no_secret(captured.out + captured.err)


def test_error_messages_never_carry_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    bad_port = f"postgresql+psycopg://shop:{DB_PASSWORD}@db.example:notaport/shop"
    for key, value in _secret_env(bad_port).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "NOT-A-MECHANISM")
    with pytest.raises(ConfigError) as config_error:
        Settings.load()
    _assert_no_secret(str(config_error.value))

    (port,) = free_ports(1)
    unreachable = f"postgresql+psycopg://shop:{DB_PASSWORD}@127.0.0.1:{port}/shop"
    monkeypatch.delenv("KAFKA_SASL_MECHANISM")
    settings = Settings.load(database_url=unreachable)
    with pytest.raises(ConnectionFailed) as connection_error:
        probe_database(settings, timeout=2)
    _assert_no_secret(str(connection_error.value))
    assert "shop:****@127.0.0.1" in str(connection_error.value)


def test_cli_errors_never_carry_a_secret() -> None:
    env = _env(**_secret_env(f"postgresql+psycopg://shop:{DB_PASSWORD}@h:notaport/shop"))
    result = _run("config", "show", env=env)
    _assert_one_error_line(result, 2)
    _assert_no_secret(result.stdout + result.stderr)
