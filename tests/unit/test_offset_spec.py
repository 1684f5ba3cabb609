"""Offset specs of ``inspect peek --offset``: parsing and resolving within watermarks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shopstream.errors import UsageError
from shopstream.inspection.offset_spec import (
    Absolute,
    AtTime,
    Beginning,
    End,
    FromBeginning,
    FromEnd,
    OffsetSpec,
    parse_offset_spec,
    resolve_offset,
)

NOW = datetime(2026, 11, 29, 15, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("beginning", Beginning()),
        ("end", End()),
        ("0", Absolute(0)),
        ("42", Absolute(42)),
        (" 42 ", Absolute(42)),
        ("-5", FromEnd(5)),
        ("-0", FromEnd(0)),
        ("+3", FromBeginning(3)),
        ("+0", FromBeginning(0)),
    ],
)
def test_offset_forms(text: str, expected: OffsetSpec) -> None:
    assert parse_offset_spec(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("@-1h", timedelta(hours=1)),
        ("@-30m", timedelta(minutes=30)),
        ("@-45s", timedelta(seconds=45)),
        ("@-500ms", timedelta(milliseconds=500)),
        ("@-2d", timedelta(days=2)),
        ("@-1w", timedelta(weeks=1)),
        ("@-1h30m", timedelta(hours=1, minutes=30)),
        ("@-0s", timedelta(0)),
    ],
)
def test_relative_times_count_back_from_now(text: str, delta: timedelta) -> None:
    assert parse_offset_spec(text, NOW) == AtTime(ms(NOW - delta))


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("@2026-11-29T14:00:00Z", datetime(2026, 11, 29, 14, tzinfo=UTC)),
        ("@2026-11-29T14:00:00.250Z", datetime(2026, 11, 29, 14, 0, 0, 250_000, tzinfo=UTC)),
        (
            "@2026-11-29T16:00:00+02:00",
            datetime(2026, 11, 29, 16, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("@2026-11-29T14:00:00", datetime(2026, 11, 29, 14, tzinfo=UTC)),
        ("@2026-11-29", datetime(2026, 11, 29, tzinfo=UTC)),
    ],
)
def test_iso_times(text: str, moment: datetime) -> None:
    assert parse_offset_spec(text, NOW) == AtTime(ms(moment))


def test_offset_with_zone_is_the_same_instant_as_utc() -> None:
    assert parse_offset_spec("@2026-11-29T16:00:00+02:00", NOW) == parse_offset_spec(
        "@2026-11-29T14:00:00Z", NOW
    )


def test_epoch_millis() -> None:
    assert parse_offset_spec(f"@{NOW_MS}", NOW) == AtTime(NOW_MS)


def test_relative_time_defaults_to_the_clock() -> None:
    before = ms(datetime.now(UTC) - timedelta(hours=1))
    spec = parse_offset_spec("@-1h")
    after = ms(datetime.now(UTC) - timedelta(hours=1))
    assert isinstance(spec, AtTime)
    assert before <= spec.timestamp_ms <= after


@pytest.mark.parametrize(
    "text",
    [
        "",
        "latest",
        "Beginning",
        "1.5",
        "-",
        "+",
        "--1",
        "+-1",
        "-1h",
        "@",
        "@-1x",
        "@-h",
        "@yesterday",
        "@2026-13-01",
        "@+1h",
        "5m",
        "1e3",
        "\u00b2",  # a digit to str.isdigit(), not to int()
        "9" * 5000,  # more digits than int() converts
        "9223372036854775808",  # beyond Kafka's 64-bit offsets
        "-9223372036854775808",
        "@99999999999999999999",
        "@-99999999999d",  # before the first date
        "@0001-01-01T00:00:00+14:00",
        "@1969-12-31T23:59:59Z",  # before the epoch
    ],
)
def test_malformed_specs_name_the_accepted_syntax(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_offset_spec(text, NOW)
    message = caught.value.message
    assert repr(text) in message
    for form in ("beginning", "end", "-N", "+N", "@TIME", "@-1h"):
        assert form in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (Beginning(), 10),
        (End(), 20),
        (Absolute(15), 15),
        (Absolute(10), 10),
        (Absolute(20), 20),
        (Absolute(3), 10),  # before the start (deleted): the start
        (Absolute(99), 20),  # past the end: the end
        (FromEnd(5), 15),
        (FromEnd(0), 20),
        (FromEnd(50), 10),
        (FromBeginning(4), 14),
        (FromBeginning(0), 10),
        (FromBeginning(50), 20),
    ],
)
def test_resolve_within_watermarks(spec: OffsetSpec, expected: int) -> None:
    assert resolve_offset(spec, start=10, end=20) == expected


def test_resolve_in_an_empty_partition() -> None:
    for spec in (Beginning(), End(), Absolute(0), FromEnd(3), FromBeginning(3)):
        assert resolve_offset(spec, start=7, end=7) == 7


def test_time_specs_are_resolved_by_the_broker() -> None:
    with pytest.raises(TypeError):
        resolve_offset(AtTime(NOW_MS), start=0, end=10)
