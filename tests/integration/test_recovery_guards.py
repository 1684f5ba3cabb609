"""Recovery paths are guarded (issue #13, item 10), on a real PostgreSQL.

- every connection has a statement timeout, so a hung database fails a statement (a
  transient error, retried) instead of stalling a consumer past its poll interval;
- ``consume rebuild`` resets offsets first, which fences a member still writing: a
  zombie's late transaction cannot survive the reset, whichever commits first.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, Table, func, insert, select, text
from sqlalchemy.exc import OperationalError

from consumers.projections.cart_projection import CartProjection
from consumers.runtime.offset_store import (
    OffsetConflict,
    OffsetStore,
    ProcessedEvents,
    offsets_table,
)
from consumers.runtime.rebuild import reset_group
from consumers.runtime.runner import is_transient_db_error
from shopstream.config import Settings
from shopstream.db.engine import lift_statement_timeout, make_engine
from shopstream.db.migrate import upgrade
from shopstream.db.models import Cart
from tests.e2e.test_projections import Pipeline, pipeline, shopstream_exe, simulated
from tests.support.daemons import wait_for

__all__ = ["pipeline"]  # the fixture, imported for these tests

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

GROUP = "cart-projection"
KEY = ("t-fence-cart-events", 0)
carts: Table = Cart.__table__  # type: ignore[assignment]


@pytest.fixture
def pg(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, settings=Settings(database_statement_timeout_ms=500))
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_statement_that_hangs_fails_transiently_within_the_timeout(pg: Engine) -> None:
    with pg.connect() as connection:
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "500ms"
        started = time.monotonic()
        with pytest.raises(OperationalError) as raised:
            connection.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 3
        assert "statement timeout" in str(raised.value)
        assert is_transient_db_error(raised.value)  # the runtime pauses and retries it


def test_migrations_and_resets_lift_the_timeout(pg: Engine) -> None:
    with pg.begin() as connection:
        lift_statement_timeout(connection)
        connection.execute(text("SELECT pg_sleep(0.8)"))  # longer than the 500 ms
    with pg.connect() as connection:  # only for that transaction
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "500ms"


def test_a_hung_database_fails_statements_and_the_group_waits_for_it(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.produce(simulated(orders=10, seed=1, invalid_rate=0.0))
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_MS", "300")
    log_path = pipeline.workdir / "consume.log"
    with pipeline.engine.connect() as locker, log_path.open("w") as log:
        locker.execute(text("LOCK TABLE consumer_offsets IN ACCESS EXCLUSIVE MODE"))
        consume = subprocess.Popen(
            [shopstream_exe(), "consume", GROUP, "--until-caught-up", "--http-port", "-1"],
            env={**pipeline.env(), "LOG_LEVEL": "INFO"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # the database "hangs": every statement on the offsets waits for the lock
            assert wait_for(lambda: "statement timeout" in log_path.read_text(), 60)
            time.sleep(2.0)
            assert consume.poll() is None
            locker.rollback()
            code = consume.wait(60)
        finally:
            if consume.poll() is None:
                consume.kill()
                consume.wait()
    output = log_path.read_text()
    assert code == 0, output
    assert "canceling statement due to statement timeout" in output
    assert pipeline.caught_up(GROUP)


def zombie_batch(engine: Engine, started: threading.Event, go: threading.Event) -> None:
    """A member that lost its partition without knowing: compare-and-set its batch's
    offsets, write a projection row, then wait before committing."""
    with engine.begin() as connection:
        OffsetStore(GROUP, KEY[0]).advance(connection, {KEY: (10, 20)})
        ProcessedEvents(GROUP, KEY[0]).claim(connection, ["zombie-event"])
        now = datetime.now(UTC)
        connection.execute(
            insert(carts).values(
                cart_id="zombie-cart",
                customer_id="c",
                status="ACTIVE",
                item_count=1,
                subtotal=Decimal("1.00"),
                currency="EUR",
                created_at=now,
                last_activity_at=now,
            )
        )
        started.set()
        assert go.wait(10)


def stored(engine: Engine) -> None:
    with engine.begin() as connection:
        OffsetStore(GROUP, KEY[0]).load(connection, [KEY])
        OffsetStore(GROUP, KEY[0]).advance(connection, {KEY: (0, 10)})


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        cart_rows = connection.scalar(select(func.count()).select_from(carts))
        offset_rows = connection.scalar(select(func.count()).select_from(offsets_table))
    return int(cart_rows or 0), int(offset_rows or 0)


def wait_until_blocked(engine: Engine) -> None:
    """Until some session of this database waits for a lock (the reset, on the zombie)."""
    deadline = time.monotonic() + 10
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"
    )
    with engine.connect() as connection:
        while not connection.scalar(query):
            assert time.monotonic() < deadline, "the reset never waited for the zombie"
            time.sleep(0.05)


def test_a_zombie_that_commits_during_the_reset_leaves_nothing(pg: Engine) -> None:
    stored(pg)
    started, go = threading.Event(), threading.Event()
    zombie = threading.Thread(target=zombie_batch, args=(pg, started, go))
    zombie.start()
    assert started.wait(10)
    reset = threading.Thread(target=reset_group, args=(pg, CartProjection(), KEY[0]))
    reset.start()
    wait_until_blocked(pg)  # the reset waits on the zombie's offset row
    go.set()  # the zombie commits first ...
    zombie.join(10)
    reset.join(10)
    assert not reset.is_alive()
    assert counts(pg) == (0, 0)  # ... and its row went with the reset


def test_a_zombie_that_comes_after_the_reset_fails(pg: Engine) -> None:
    stored(pg)
    reset_group(pg, CartProjection(), KEY[0])
    with pytest.raises(OffsetConflict), pg.begin() as connection:
        OffsetStore(GROUP, KEY[0]).advance(connection, {KEY: (10, 20)})
    assert counts(pg) == (0, 0)
