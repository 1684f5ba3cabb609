"""A registry stopped in the middle of a run: the group pauses and resumes, and no event
is dead-lettered (issue #13, item 4). Only a registry's own 40403 for a schema id
dead-letters; connection errors, 5xx and bare 404s (a registry still starting) wait.

Needs the local launcher (the ``local_stack`` fixture): run without the stack's
environment variables, as CI does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers.base import EventProducer, ProducerOptions
from shopstream.config import Settings
from shopstream.stack import LocalStack
from tests.conftest import StackEndpoints
from tests.support.daemons import wait_for
from tests.support.faults import FaultRun, simulated_events

pytestmark = [pytest.mark.faults]

GROUP = "order-state"


@pytest.fixture
def run(stack: StackEndpoints, unique_name: str, tmp_path: Path) -> Iterator[FaultRun]:
    settings = Settings.load(
        kafka_bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.registry_url,
        database_url=f"sqlite:///{tmp_path / 'shopstream.db'}",
        shopstream_topic_prefix=f"{unique_name}-",
    )
    fault_run = FaultRun(settings, [GROUP], tmp_path).prepare()
    yield fault_run
    fault_run.close()


def test_a_registry_outage_pauses_the_group_and_dead_letters_nothing(
    run: FaultRun, local_stack: LocalStack
) -> None:
    events = simulated_events(orders=150, customers=40, seed=4, invalid_rate=0.0)
    producer = EventProducer(
        run.settings, ProducerOptions(topic_prefix=run.settings.shopstream_topic_prefix)
    ).start()  # resolves every schema id now: sending needs no registry
    daemon = run.daemon([GROUP]).start()
    daemon.wait_ready()

    local_stack.registry.stop()
    try:
        producer.send_all(events)
        producer.close().raise_if_failed()
        run.produced = list(events)
        # the daemon has never seen these schema ids: it must wait, not dead-letter
        assert wait_for(lambda: "schema registry unavailable" in daemon.current_log(), 30)
        time.sleep(1.0)
        assert daemon.running
    finally:
        local_stack.registry.start()
    run.faults["schema registry stopped and restarted"] += 1

    run.finish(timeout=120)
    report = run.report(GROUP)
    print("\n" + run.summary([report]))
    assert report.dead_letters_total == 0
    run.assert_exact([report])
