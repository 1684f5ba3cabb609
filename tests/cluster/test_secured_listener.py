"""``stack up --secure``: the whole pipeline over SASL_SSL (SCRAM-SHA-512, TLS), and the
three ways to get the connection wrong, each a one-line error through the CLI.

One secured single-node stack for the module (a cluster of its own, never the
session's): the CA, the broker certificate and the SCRAM user come from the launcher;
the client settings are the ones ``stack up`` prints, the password from its 0600 file.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream.config import Settings
from shopstream.groups import PROJECT_GROUPS
from shopstream.stack import LocalStack
from shopstream.stack.broker import secure_files
from tests.conftest import fresh_postgres_database
from tests.support.faults import FaultRun, simulated_events
from tests.support.own_stack import own_stack
from tests.support.pipeline import produce

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.e2e]

SHOPSTREAM = str(Path(sys.executable).with_name("shopstream"))


@pytest.fixture(scope="module")
def secured() -> Iterator[LocalStack]:
    with own_stack(secure=True) as local:
        yield local


def _client_env(local: LocalStack) -> dict[str, str]:
    """What ``stack up --secure`` prints, plus the password from its 0600 file."""
    endpoints = local.endpoints
    assert endpoints.secure is not None and endpoints.secrets_file is not None
    env = dict(endpoints.secure)
    for line in endpoints.secrets_file.read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        env[name] = value
    env["SCHEMA_REGISTRY_URL"] = endpoints.registry_url
    return env


def test_secret_files_are_private_and_settings_carry_no_password(secured: LocalStack) -> None:
    files = secure_files(secured.config)
    for path in (files.client_env, files.private_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    printed = secured.endpoints.env()
    assert printed["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert printed["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert "KAFKA_SASL_PASSWORD" not in printed
    assert files.password() not in " ".join(printed.values())
    server_properties = (secured.kafka.home / "server.properties").read_text(encoding="utf-8")
    assert files.password() not in server_properties


def test_pipeline_over_the_secured_listener(
    secured: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _client_env(secured)
    assert secured.endpoints.database_url is not None
    with fresh_postgres_database(secured.endpoints.database_url) as database_url:
        settings = Settings.load(
            kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
            kafka_security_protocol=env["KAFKA_SECURITY_PROTOCOL"],
            kafka_sasl_mechanism=env["KAFKA_SASL_MECHANISM"],
            kafka_sasl_username=env["KAFKA_SASL_USERNAME"],
            kafka_sasl_password=env["KAFKA_SASL_PASSWORD"],
            kafka_ssl_ca_location=env["KAFKA_SSL_CA_LOCATION"],
            schema_registry_url=env["SCHEMA_REGISTRY_URL"],
            database_url=database_url,
            shopstream_topic_prefix="secured-",
        )
        run = FaultRun(settings, list(PROJECT_GROUPS), tmp_path).prepare()
        try:
            events = simulated_events(orders=300, customers=120, seed=33, invalid_rate=0.02)
            run.produced = list(events)
            began = time.monotonic()
            produce(settings, events)
            produced_s = time.monotonic() - began
            for group in PROJECT_GROUPS:
                run.daemon([group]).start()
            run.finish(timeout=180)
            applied_s = time.monotonic() - began
            reports = [run.report(group) for group in PROJECT_GROUPS]
            with capsys.disabled():
                print(
                    f"\nsecured pipeline (SASL_SSL, SCRAM-SHA-512, TLS 127.0.0.1): "
                    f"{len(events)} events produced in {produced_s:.1f} s, all three groups "
                    f"applied in {applied_s:.1f} s\n" + run.summary(reports),
                    flush=True,
                )
            run.assert_exact(reports)
            assert all(report.applied == report.expected_applied for report in reports)
        finally:
            run.close()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_"))}
    return subprocess.run(
        [SHOPSTREAM, *args],
        env={**base, **env, "DATABASE_URL": "sqlite:///unused.db"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_right_settings_pass_the_cli_check(secured: LocalStack) -> None:
    result = _cli(_client_env(secured), "stack", "check", "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert "1 broker(s)" in result.stdout


@pytest.mark.parametrize("command", [("stack", "check", "--timeout", "3"), ("topics", "list")])
def test_wrong_password_is_one_line(secured: LocalStack, command: tuple[str, ...]) -> None:
    env = {**_client_env(secured), "KAFKA_SASL_PASSWORD": "not-the-password"}
    began = time.monotonic()
    line = _one_line_error(_cli(env, *command), "authentication", "KAFKA_SASL_PASSWORD")
    assert "not-the-password" not in line
    assert time.monotonic() - began < 30


def test_unknown_ca_is_one_line(secured: LocalStack, tmp_path: Path) -> None:
    env = {**_client_env(secured), "KAFKA_SSL_CA_LOCATION": "/etc/ssl/certs/ca-certificates.crt"}
    _one_line_error(_cli(env, "stack", "check", "--timeout", "3"), "KAFKA_SSL_CA_LOCATION")


def test_plaintext_to_the_tls_listener_is_one_line(secured: LocalStack) -> None:
    env = {**_client_env(secured), "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    _one_line_error(_cli(env, "stack", "check", "--timeout", "3"), "KAFKA_SECURITY_PROTOCOL")


def test_stack_up_prints_the_settings_but_never_the_password(secured: LocalStack) -> None:
    state = ["--state-dir", str(secured.config.state_dir)]
    result = _cli({"COLUMNS": "250"}, "stack", "up", *state)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already running") == 2
    assert "export KAFKA_SECURITY_PROTOCOL=SASL_SSL" in result.stdout
    assert "export KAFKA_SASL_MECHANISM=SCRAM-SHA-512" in result.stdout
    assert f"export KAFKA_BOOTSTRAP_SERVERS={secured.secure_bootstrap_servers}" in result.stdout
    assert str(secure_files(secured.config).client_env) in result.stdout
    password = secure_files(secured.config).password()
    assert password not in result.stdout + result.stderr
    for log in secured.kafka.log_files:
        assert password not in log.read_text(encoding="utf-8", errors="replace")
