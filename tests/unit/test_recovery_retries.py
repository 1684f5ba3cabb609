"""Recovery look-ups retry transient failures with a bounded backoff (issue #13, item 10):
a database that refuses connections is retried (then the last error is raised, for the
caller to pause on); any other error is raised at once."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from consumers.runtime.runner import RETRY_ATTEMPTS, RETRY_BACKOFF_S, with_retries
from shopstream.config import Settings
from shopstream.db.engine import make_engine


def test_a_database_that_refuses_connections_is_retried_then_reported() -> None:
    nowhere = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", settings=Settings())
    calls = 0

    def read() -> object:
        nonlocal calls
        calls += 1
        with nowhere.connect() as connection:
            return connection.execute(text("SELECT 1")).scalar()

    started = time.monotonic()
    with pytest.raises(OperationalError):
        with_retries("re-reading offsets", read)
    assert calls == RETRY_ATTEMPTS
    waited = sum(RETRY_BACKOFF_S * 2**i for i in range(RETRY_ATTEMPTS - 1))
    assert waited <= time.monotonic() - started < waited + 10


def test_a_transient_failure_that_clears_is_survived() -> None:
    nowhere = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", settings=Settings())
    calls = 0

    def read() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            with nowhere.connect():
                pass
        return 42

    assert with_retries("re-reading offsets", read) == 42
    assert calls == 3


def test_other_errors_are_not_retried() -> None:
    calls = 0

    def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        with_retries("re-reading offsets", broken)
    assert calls == 1
