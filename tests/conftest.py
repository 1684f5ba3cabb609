"""Shared fixtures: a running stack, unique names, settings and databases.

The session-wide ``stack`` comes from the first of these that applies:

(a) the environment: ``KAFKA_BOOTSTRAP_SERVERS`` and ``SCHEMA_REGISTRY_URL``
    (and optionally ``TEST_POSTGRES_URL``, a server the tests may create
    databases in);
(b) testcontainers, when a Docker engine answers: ``confluentinc/cp-kafka`` in
    KRaft mode, ``apicurio/apicurio-registry`` and ``postgres``;
(c) the project's own local launcher (:class:`shopstream.stack.LocalStack`) with
    PostgreSQL, in a fresh temporary state dir on free ports, so a developer's
    own stack is never touched. It is started once per session, on first use,
    and stopped (and its state dir deleted) at the end.

Everything is real: no mock broker, no fake registry. Fixtures are lazy: unit
tests that use none of them start nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from shopstream.config import Settings
from shopstream.db.engine import create_postgres_database, drop_postgres_database, make_engine
from shopstream.db.migrate import upgrade
from shopstream.errors import ShopstreamError
from shopstream.kafka.clients import make_admin
from shopstream.prefix import delete_topics_and_subjects
from shopstream.serde import make_registry_client
from shopstream.stack import LocalStack, StackConfig

CP_KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
APICURIO_IMAGE = "apicurio/apicurio-registry:3.3.3"
POSTGRES_IMAGE = "postgres:16"
CCOMPAT_PATH = "/apis/ccompat/v7"


@dataclass(frozen=True)
class StackEndpoints:
    """Where the tests' stack answers.

    ``postgres_url`` is a SQLAlchemy URL of a PostgreSQL server in which tests may
    create databases (None when there is none). ``local`` is the launcher handle
    when the stack was started by the local launcher, so fault tests can stop and
    start just Kafka (``local.kafka``), the registry or PostgreSQL.
    """

    bootstrap_servers: str
    registry_url: str
    postgres_url: str | None
    source: str = "env"
    local: LocalStack | None = None


# -- (a) the environment -----------------------------------------------------------


def _env_stack() -> StackEndpoints | None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    registry = os.environ.get("SCHEMA_REGISTRY_URL")
    if not (bootstrap and registry):
        return None
    return StackEndpoints(bootstrap, registry, os.environ.get("TEST_POSTGRES_URL") or None)


# -- (b) testcontainers ------------------------------------------------------------


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return False
    return True


def _wait_for_http(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=3) as response:
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.5)


def _container_stack(cleanup: contextlib.ExitStack) -> StackEndpoints | None:
    if not _docker_answers():
        return None
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.container import DockerContainer

    kafka = cleanup.enter_context(KafkaContainer(CP_KAFKA_IMAGE).with_kraft())
    registry = cleanup.enter_context(DockerContainer(APICURIO_IMAGE).with_exposed_ports(8080))
    postgres = cleanup.enter_context(PostgresContainer(POSTGRES_IMAGE, driver="psycopg"))
    host = registry.get_container_host_ip()
    registry_url = f"http://{host}:{registry.get_exposed_port(8080)}{CCOMPAT_PATH}"
    _wait_for_http(f"{registry_url}/subjects")
    return StackEndpoints(
        kafka.get_bootstrap_server(),
        registry_url,
        postgres.get_connection_url(),
        source="testcontainers",
    )


# -- (c) the local launcher --------------------------------------------------------


def _local_stack(cleanup: contextlib.ExitStack) -> StackEndpoints:
    state_dir = Path(tempfile.mkdtemp(prefix="shopstream-stack-test-"))
    state_dir.chmod(0o755)  # reachable by the 'postgres' user when we run as root
    cleanup.callback(shutil.rmtree, state_dir, ignore_errors=True)
    cache_dir = Settings.load().shopstream_cache_dir
    local = LocalStack(StackConfig.isolated(cache_dir, state_dir, with_postgres=True))
    cleanup.callback(local.purge)  # stops every part, deletes data (also a relocated cluster)
    try:
        local.up()
    except ShopstreamError as exc:
        pytest.fail(f"the local stack did not start: {exc.message}", pytrace=False)
    endpoints = local.endpoints
    return StackEndpoints(
        endpoints.bootstrap_servers,
        endpoints.registry_url,
        endpoints.database_url,
        source="local",
        local=local,
    )


@pytest.fixture(scope="session")
def used_names() -> list[str]:
    """Every :func:`unique_name` handed out in this session."""
    return []


@pytest.fixture(scope="session")
def stack(used_names: list[str]) -> Iterator[StackEndpoints]:
    """The running stack for this test session (see the module docstring)."""
    with contextlib.ExitStack() as cleanup:
        shared = _env_stack()
        if shared is not None:  # a developer's stack: leave it as it was found
            cleanup.callback(_delete_test_data, shared, used_names)
        yield shared or _container_stack(cleanup) or _local_stack(cleanup)


def _delete_test_data(endpoints: StackEndpoints, names: list[str]) -> None:
    """Delete the topics and registry subjects named after this session's unique names
    (best effort), so runs against a long-lived stack do not pile them up."""
    prefixes = tuple(names)
    if not prefixes:
        return
    settings = Settings.load(
        kafka_bootstrap_servers=endpoints.bootstrap_servers,
        schema_registry_url=endpoints.registry_url,
    )
    topics: list[str] = []
    subjects: list[str] = []
    with contextlib.suppress(Exception):
        listed = make_admin(settings).list_topics(timeout=10).topics
        topics = [t for t in listed if t.startswith(prefixes)]
    with contextlib.suppress(Exception):
        registry = make_registry_client(settings.registry_config())
        subjects = [s for s in registry.get_subjects() if s.startswith(prefixes)]
    with contextlib.suppress(Exception):
        delete_topics_and_subjects(settings, topics, subjects)


@pytest.fixture
def local_stack(stack: StackEndpoints) -> Iterator[LocalStack]:
    """The launcher handle, for tests that stop and start parts; skips otherwise.

    After the test every part runs again (a no-op for parts that still run), so a
    fault test that fails half-way does not leave the next test without a broker.
    """
    if stack.local is None:
        pytest.skip(f"needs the local launcher (the stack comes from {stack.source})")
    local = stack.local
    yield local
    for part in local.parts:
        part.start()


@pytest.fixture(autouse=True)
def restore_logging_config() -> Iterator[None]:
    """Leave structlog as the test found it: a command run in-process (CliRunner)
    configures logging onto that test's captured stderr, which pytest closes after."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


# -- names, databases, settings ------------------------------------------------------


@pytest.fixture
def unique_name(request: pytest.FixtureRequest, used_names: list[str]) -> str:
    """A short name no other test (or run) uses, for topics and consumer groups."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    name = f"t-{base}-{uuid.uuid4().hex[:8]}"
    used_names.append(name)
    return name


@contextlib.contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create an empty database on ``server_url``; yield its SQLAlchemy URL; drop it."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = create_postgres_database(server_url, name)
    try:
        yield url
    finally:
        drop_postgres_database(server_url, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database: a SQLite file, then a fresh PostgreSQL
    database created for this test in the stack's server (and dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shopstream.db'}"
        return
    endpoints: StackEndpoints = request.getfixturevalue("stack")
    if not endpoints.postgres_url:
        pytest.skip("no PostgreSQL in this stack (set TEST_POSTGRES_URL)")
    with fresh_postgres_database(endpoints.postgres_url) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on :func:`database_url` with the schema at head; disposed after."""
    migrated = make_engine(database_url)
    upgrade(migrated)
    yield migrated
    migrated.dispose()


@pytest.fixture
def settings(stack: StackEndpoints, tmp_path: Path) -> Settings:
    """Settings pointing at the test stack, with a SQLite database of this test."""
    return Settings.load(
        kafka_bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.registry_url,
        database_url=f"sqlite:///{tmp_path / 'shopstream.db'}",
    )
