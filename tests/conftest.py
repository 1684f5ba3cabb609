"""Shared fixtures: a running stack, unique names, settings and databases.

PROVISIONAL (stack path (a) only): the stack comes from KAFKA_BOOTSTRAP_SERVERS /
SCHEMA_REGISTRY_URL (and TEST_POSTGRES_URL) in the environment. The testcontainers
and local-launcher paths are added by the stack work; fixture names stay the same:
``stack``, ``settings``, ``unique_name``, ``database_url``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shopstream.config import Settings


@dataclass(frozen=True)
class StackEndpoints:
    bootstrap_servers: str
    registry_url: str
    postgres_url: str | None


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEndpoints]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    registry = os.environ.get("SCHEMA_REGISTRY_URL")
    if not (bootstrap and registry):
        pytest.skip("no stack: set KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL")
    yield StackEndpoints(bootstrap, registry, os.environ.get("TEST_POSTGRES_URL"))


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A short unique name for topics and groups of one test."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"t-{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shopstream.db'}"
    stack_endpoints: StackEndpoints = request.getfixturevalue("stack")
    if not stack_endpoints.postgres_url:
        pytest.skip("no PostgreSQL in this stack")
    return stack_endpoints.postgres_url


@pytest.fixture
def settings(stack: StackEndpoints, tmp_path: Path) -> Settings:
    return Settings.load(
        kafka_bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.registry_url,
        database_url=f"sqlite:///{tmp_path / 'shopstream.db'}",
    )
