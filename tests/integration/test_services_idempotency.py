"""Idempotency-Key on PostgreSQL: the key's lock and lookup are one statement, whose
snapshot predates its lock. A first request that commits in between is replayed to the
second, never run twice (see ``shopstream/services/idempotency.py``)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Connection, func, select

from shopstream.db.migrate import upgrade
from shopstream.services import idempotency, outbox
from shopstream.services.commands import Result, add_item, seed_products
from shopstream.services.transactions import CommandExecutor, Request, make_service_engine
from shopstream.simulation.simulator import ProductCatalog

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

CATALOG = ProductCatalog.load()
SKU = CATALOG.products[0].sku


def test_a_key_stored_after_it_was_claimed_is_replayed_not_run_twice(database_url: str) -> None:
    engine = make_service_engine(database_url)
    upgrade(engine)
    with engine.begin() as connection:
        seed_products(connection, CATALOG)
    key, fingerprint = "race-key", idempotency.fingerprint("POST", "/carts/c-race/items", b"{}")
    first_answer = idempotency.StoredResponse(200, '{"first":true}')
    runs: list[str] = []

    def command(connection: Connection, now: datetime) -> Result:
        runs.append("run")
        if len(runs) == 1:  # the key's first request commits after this one's claim
            with engine.begin() as other:
                idempotency.store(other, key, fingerprint, first_answer, now)
        return add_item(connection, now, "c-race", "alice", SKU, 1)

    try:
        answer = CommandExecutor(engine).execute(Request(key, fingerprint), command)
        assert answer.replayed and answer.body == first_answer.body
        assert runs == ["run"], "the command ran again instead of replaying"
        with engine.connect() as connection:
            written = connection.execute(select(func.count()).select_from(outbox.outbox))
            assert written.scalar_one() == 0, "the raced attempt's events were committed"
    finally:
        engine.dispose()
