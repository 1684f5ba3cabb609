"""``shopstream`` starts without importing its sub-commands (:mod:`shopstream.cli.lazy`).

The root help lists each sub-command from its :class:`~shopstream.cli.lazy.Lazy` entry;
these tests keep those lines equal to the commands' own help, and check that starting
the CLI and printing its help import neither a command module nor a heavy library.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import pytest

from shopstream.cli.app import Commands
from shopstream.cli.lazy import Lazy

HEAVY = (
    "shopstream.cli.",
    "shopstream.config",
    "confluent_kafka",
    "fastavro",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "prometheus_client",
    "structlog",
    "pydantic",
    "consumers",
    "producers",
)
COMMANDS = [
    "simulate",
    "consume",
    "serve",
    "relay",
    "demo",
    "config",
    "stack",
    "topics",
    "schemas",
    "db",
    "produce",
    "inspect",
    "dlq",
    "console",
    "query",
]


def test_every_command_is_listed_in_order() -> None:
    assert [entry.name for entry in Commands.lazy] == COMMANDS


@pytest.mark.parametrize("entry", Commands.lazy, ids=lambda entry: entry.name)
def test_the_listed_help_is_the_first_paragraph_of_the_commands_own(entry: Lazy) -> None:
    command = entry.load("rich")
    assert command.name == entry.name
    assert inspect.cleandoc(command.help or "").split("\n\n")[0] == entry.help


def test_starting_and_the_help_import_no_command_and_no_heavy_library() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from shopstream.cli.app import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        loaded = {{m for m in sys.modules if m.startswith({HEAVY!r})}}
        print(sorted(loaded - {{"shopstream.cli.app", "shopstream.cli.lazy"}}), file=sys.stderr)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr.strip() == "[]"
    for name in COMMANDS:
        assert f" {name} " in done.stdout
