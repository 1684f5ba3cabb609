"""Offset specs: where in a partition ``inspect peek``/``tail`` start reading.

Accepted forms (``--offset``)::

    beginning        the first offset still on the broker
    end              the end: only messages produced from now on
    N                absolute offset N
    -N               N messages before the end
    +N               N messages after the beginning
    @TIME            the first message at or after TIME: ISO-8601
                     (@2026-11-29T15:00:00Z; no zone means UTC), epoch milliseconds
                     (@1764428400000), or relative to now (@-1h, @-30m, @-1h30m, @-2d)

:func:`parse_offset_spec` turns text into a spec; :func:`resolve_offset` turns a
non-time spec into an offset within a partition's ``[start, end]`` watermarks. Time
specs are resolved by the broker (``offsets_for_times``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shopstream.errors import UsageError

OFFSET_SYNTAX = (
    "beginning, end, N (absolute offset), -N (N before the end), +N (N after the "
    "beginning), or @TIME (ISO-8601 like @2026-11-29T15:00:00Z, epoch millis, "
    "or relative like @-1h, @-30m)"
)

_UNITS: dict[str, timedelta] = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_RELATIVE = re.compile(r"-((?:[0-9]+(?:ms|s|m|h|d|w))+)")
_RELATIVE_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"[0-9]+")
MAX_INT64 = 2**63 - 1
"""Kafka offsets and timestamps are signed 64-bit integers."""


@dataclass(frozen=True, slots=True)
class Beginning:
    """The first offset still on the broker (the low watermark)."""


@dataclass(frozen=True, slots=True)
class End:
    """The high watermark: only messages produced after the read starts."""


@dataclass(frozen=True, slots=True)
class Absolute:
    offset: int


@dataclass(frozen=True, slots=True)
class FromEnd:
    """``count`` messages before the end."""

    count: int


@dataclass(frozen=True, slots=True)
class FromBeginning:
    """``count`` messages after the beginning."""

    count: int


@dataclass(frozen=True, slots=True)
class AtTime:
    """The first message whose timestamp is at or after ``timestamp_ms``."""

    timestamp_ms: int


OffsetSpec = Beginning | End | Absolute | FromEnd | FromBeginning | AtTime


def offset_spec_error(text: str, why: str = "") -> UsageError:
    detail = f" ({why})" if why else ""
    return UsageError(f"invalid offset {text!r}{detail}; expected {OFFSET_SYNTAX}")


def parse_offset_spec(text: str, now: datetime | None = None) -> OffsetSpec:
    """Parse an ``--offset`` value; ``now`` anchors relative times (default: the clock)."""
    spec = text.strip()
    if spec == "beginning":
        return Beginning()
    if spec == "end":
        return End()
    if _NUMBER.fullmatch(spec):
        return Absolute(_int64(spec, text))
    if spec[:1] == "-" and _NUMBER.fullmatch(spec[1:]):
        return FromEnd(_int64(spec[1:], text))
    if spec[:1] == "+" and _NUMBER.fullmatch(spec[1:]):
        return FromBeginning(_int64(spec[1:], text))
    if spec[:1] == "@" and len(spec) > 1:
        return AtTime(parse_time(spec[1:], now or datetime.now(UTC), original=text))
    raise offset_spec_error(text)


def parse_time(text: str, now: datetime, *, original: str | None = None) -> int:
    """``@``-less time text → epoch milliseconds (UTC)."""
    shown = original if original is not None else text
    if _NUMBER.fullmatch(text):
        return _int64(text, shown)
    relative = _RELATIVE.fullmatch(text)
    try:
        if relative:
            millis = _to_millis(now - _relative_delta(relative.group(1)))
        else:
            millis = _to_millis(datetime.fromisoformat(text))
    except OverflowError:
        raise offset_spec_error(shown, "out of the range of dates") from None
    except ValueError:
        raise offset_spec_error(shown, "not an ISO-8601 time or a relative time") from None
    if millis < 0:
        raise offset_spec_error(shown, "before 1970: Kafka timestamps start at the epoch")
    return millis


def _int64(digits: str, shown: str) -> int:
    """ASCII ``digits`` as an int that fits Kafka's 64-bit offsets and timestamps."""
    if len(digits) > len(str(MAX_INT64)) or int(digits) > MAX_INT64:
        raise offset_spec_error(shown, f"larger than {MAX_INT64}")
    return int(digits)


def _relative_delta(text: str) -> timedelta:
    total = timedelta()
    for amount, unit in _RELATIVE_PART.findall(text):
        total += int(amount) * _UNITS[unit]
    return total


def _to_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def resolve_offset(spec: OffsetSpec, start: int, end: int) -> int:
    """The offset ``spec`` names in a partition holding ``[start, end)``, clamped to it.

    Time specs need the broker; pass them to ``offsets_for_times`` instead.
    """
    if isinstance(spec, Beginning):
        return start
    if isinstance(spec, End):
        return end
    if isinstance(spec, Absolute):
        return _clamp(spec.offset, start, end)
    if isinstance(spec, FromEnd):
        return _clamp(end - spec.count, start, end)
    if isinstance(spec, FromBeginning):
        return _clamp(start + spec.count, start, end)
    raise TypeError(f"{spec!r} is resolved by the broker, not from watermarks")


def _clamp(offset: int, start: int, end: int) -> int:
    return max(start, min(offset, end))
