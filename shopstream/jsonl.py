"""Events as JSON Lines: one event per line, in the format of ``event.to_json()``.

    {"type": "OrderPaid", "event_id": "…", "occurred_at": "2026-01-01T08:00:00.000Z",
     "correlation_id": null, "order_id": "…", "payment_id": "…", "amount": "59.80",
     "currency": "EUR"}

Reading is line-oriented and strict: every non-blank line must be a JSON object with a
``type`` and the fields of that event (``event_id`` and ``occurred_at`` may be left
out: they are generated). A bad line is reported with its 1-based line number and the
reason, never silently dropped. Blank lines are ignored (but counted for numbering).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from shopstream.errors import ShopstreamError
from shopstream.events import DomainEvent, event_from_json

BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class LineError:
    """Why line ``line`` (1-based) is not a valid event."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)
class Validation:
    """The outcome of checking every line of a file."""

    lines: int = 0
    """Lines read (blank ones included)."""
    by_type: Counter[str] = field(default_factory=Counter)
    """Valid events by event type."""
    errors: list[LineError] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return sum(self.by_type.values())

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_line(text: str | bytes, line: int) -> DomainEvent | LineError | None:
    """One line → its event, the reason it is invalid, or None for a blank line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return LineError(line, f"not UTF-8 text (byte {exc.start + 1})")
    text = text.rstrip("\r\n")
    if line == 1:
        text = text.removeprefix(BOM)
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return LineError(line, f"not valid JSON: {exc.msg} (column {exc.colno})")
    except ValueError as exc:  # an integer of more digits than int() converts
        return LineError(line, f"not valid JSON: {str(exc).partition(';')[0]}")
    except RecursionError:
        return LineError(line, "not valid JSON: nested too deeply")
    if not isinstance(data, dict):
        return LineError(line, f'expected a JSON object with a "type", got {_json_kind(data)}')
    try:
        return event_from_json(data)
    except (ShopstreamError, ValueError, TypeError) as exc:
        return LineError(line, " ".join(str(exc).split()) or type(exc).__name__)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__


def parse_lines(lines: Iterable[str | bytes]) -> Iterator[DomainEvent | LineError]:
    """Every non-blank line as its event or its error, in file order."""
    for number, text in enumerate(lines, start=1):
        parsed = parse_line(text, number)
        if parsed is not None:
            yield parsed


def validate_lines(lines: Iterable[str | bytes]) -> Validation:
    """Check every line; count valid events by type, collect every error."""
    result = Validation()
    for number, text in enumerate(lines, start=1):
        result.lines = number
        parsed = parse_line(text, number)
        if isinstance(parsed, LineError):
            result.errors.append(parsed)
        elif parsed is not None:
            result.by_type[parsed.event_type] += 1
    return result


def valid_events(lines: Iterable[str | bytes]) -> Iterator[DomainEvent]:
    """The valid events of ``lines``, in order (invalid lines left out)."""
    for parsed in parse_lines(lines):
        if not isinstance(parsed, LineError):
            yield parsed


def dumps_event(event: DomainEvent) -> str:
    """One compact JSON line (without the newline); stable for a given event."""
    return json.dumps(event.to_json(), separators=(",", ":"), ensure_ascii=False)
