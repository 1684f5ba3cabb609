"""THE output formats of the CLI (``--format``) and its JSON printers.

``table`` is for people (Rich, on stdout); ``json`` prints one JSON document
(decimals as strings, times ISO-8601 UTC, durations in seconds); ``jsonl`` (streams
only) one compact JSON object per line. JSON text goes through
``shopstream.terminal.json_safe``: C1 controls, DEL, bidi controls and lone surrogates
as ``\\uXXXX`` escapes (the same values, safe on a terminal).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Annotated, Any

import typer

from shopstream.terminal import json_safe


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class StreamFormat(StrEnum):
    """The formats of a command that prints a stream of events."""

    table = "table"
    json = "json"
    jsonl = "jsonl"


FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json.")]
StreamFormatOpt = Annotated[
    StreamFormat, typer.Option("--format", "-f", help="table, json (an array) or jsonl.")
]


def jsonable(value: Any) -> Any:
    """Dataclasses, decimals (as strings), times (ISO-8601) and durations, for JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return value


def print_json(value: Any) -> None:
    """One indented JSON document on stdout."""
    sys.stdout.write(json_safe(json.dumps(jsonable(value), indent=2, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


def print_json_line(data: Mapping[str, object]) -> None:
    """One JSON object on one line of stdout."""
    sys.stdout.write(json_safe(json.dumps(jsonable(data), ensure_ascii=False)) + "\n")
    sys.stdout.flush()
