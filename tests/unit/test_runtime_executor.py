"""How the consumer runtime runs a batch's transaction: on a writer thread or in place."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine

from consumers.runtime.runner import CallerThreadExecutor, GroupRunner, RuntimeOptions


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
