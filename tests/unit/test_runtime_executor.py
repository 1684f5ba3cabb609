"""How the consumer runtime runs a batch's transaction (on a writer thread or in place),
and when it tells the projection to forget what it remembers of the database."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import TopicPartition
from sqlalchemy import create_engine

from consumers.projections.order_state import OrderStateProjection
from consumers.runtime.dlq_writer import DeadLetterWriter
from consumers.runtime.runner import CallerThreadExecutor, GroupRunner, RuntimeOptions
from shopstream.config import Settings


def test_caller_thread_executor_runs_at_once_on_the_calling_thread() -> None:
    seen: list[threading.Thread] = []

    def work(x: int, *, y: int) -> int:
        seen.append(threading.current_thread())
        return x + y

    future = CallerThreadExecutor().submit(work, 1, y=2)
    assert future.done()
    assert future.result() == 3
    assert seen == [threading.current_thread()]


def test_caller_thread_executor_keeps_the_error_in_the_future() -> None:
    def fail() -> None:
        raise ValueError("no")

    future = CallerThreadExecutor().submit(fail)
    assert future.done()
    with pytest.raises(ValueError, match="no"):
        future.result()


@pytest.mark.parametrize(
    ("url", "option", "threaded"),
    [
        ("sqlite://", None, False),
        ("sqlite://", True, True),
        ("postgresql+psycopg://u@127.0.0.1:1/x", None, True),
        ("postgresql+psycopg://u@127.0.0.1:1/x", False, False),
    ],
)
def test_writer_thread_by_default_on_postgresql_only(
    url: str, option: bool | None, threaded: bool
) -> None:
    runner = GroupRunner.__new__(GroupRunner)
    runner._engine = create_engine(url)  # never connects
    runner._options = RuntimeOptions(background_writes=option)
    runner.group_id = "g"
    writer = runner._make_writer()
    try:
        assert isinstance(writer, CallerThreadExecutor) is not threaded
    finally:
        writer.shutdown(wait=True)


class _Remembering(OrderStateProjection):
    def __init__(self) -> None:
        super().__init__()
        self.discarded = 0

    def discard(self) -> None:
        self.discarded += 1
        super().discard()


def _bare_runner(projection: OrderStateProjection) -> GroupRunner:
    runner = GroupRunner.__new__(GroupRunner)
    runner.projection = projection
    runner._dlq = DeadLetterWriter(Settings.load(), "g")  # never started: no producer
    runner._expected, runner._next, runner._end_at_start = {("t", 0): 5}, {("t", 0): 5}, {}
    runner._pending = set()
    return runner


def test_what_a_projection_remembers_is_dropped_on_revoke_loss_and_failure() -> None:
    projection = _Remembering()
    runner = _bare_runner(projection)
    runner._forget([TopicPartition("t", 0)])  # revoked or lost
    assert projection.discarded == 1
    runner._after_failure(recover=False, recovery=lambda: None)  # rolled back or fenced
    assert projection.discarded == 2
    assert runner._rewind_needed
