"""Avro binary encoders compiled per writer schema: typed event → message value.

fastavro's ``schemaless_writer`` takes a dict and walks the schema for every record
(3-14 µs per event here, most of producing). :func:`compile_encoder` walks the schema
once and generates one straight-line Python function per writer schema (the way
``dataclasses`` builds ``__init__``) that reads the event's attributes and writes the
Confluent header and the Avro body into one buffer: no dict, no per-field dispatch.

It covers the types our event schemas use: ``string``, ``int``, ``long``,
``timestamp-millis`` longs (UTC ``datetime``), ``decimal`` bytes, a union of ``null``
with one of those, and an array of records whose items are dataclass instances (order
lines). For any other schema it returns None and the caller keeps fastavro. The bytes
are fastavro's, byte for byte (``tests/unit/test_avro_encoder.py`` compares them over
many generated events). Values are trusted to be what the typed events guarantee
(``shopstream/events.py`` validates them on construction).
"""

from __future__ import annotations

import dataclasses
import keyword
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

Encoder = Callable[[Any], bytes]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))
_SHORT_LENGTHS = 4096


def write_long(value: int) -> bytes | bytearray:
    """An Avro ``int``/``long``: zig-zag, then a little-endian base-128 varint."""
    n = (value << 1) ^ (value >> 63)
    return _ONE_BYTE[n] if n < 0x80 else _varint(n)


def _varint(n: int) -> bytes | bytearray:
    """``n`` >= 0 as a little-endian base-128 varint."""
    if n < 0x80:
        return _ONE_BYTE[n]
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return out


_LENGTHS = tuple(write_long(n) for n in range(_SHORT_LENGTHS))
"""The encoded lengths of short strings and byte strings, looked up instead of computed."""
_SMALL = _ONE_BYTE[::2]
"""The encoded non-negative ints below 64 (zig-zag: 2n), looked up instead of computed."""
_CONTINUED = tuple(bytes((n | 0x80,)) for n in range(0x80))
_TAILS: dict[int, bytes] = {}
_MAX_TAILS = 4096


def write_millis(value: int) -> bytes | bytearray:
    """:func:`write_long` for timestamps, faster: of a timestamp's 6-byte varint, all
    but the first two bytes change only every 8 seconds, so they are cached."""
    n = (value << 1) ^ (value >> 63)
    if n < 0x4000:
        return write_long(value)
    high = n >> 14
    tail = _TAILS.get(high)
    if tail is None:
        if len(_TAILS) >= _MAX_TAILS:
            _TAILS.clear()
        tail = _TAILS[high] = bytes(_varint(high))
    return _CONTINUED[n & 0x7F] + _CONTINUED[n >> 7 & 0x7F] + tail


class _Unsupported(Exception):
    """A schema shape this compiler does not generate code for (fastavro handles it)."""


class _Generator:
    """Source lines of one encoder function.

    Each value emits the statements it needs and returns the expressions of its parts
    (byte strings), which the function joins once at the end.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._names = 0

    def name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def record(self, schema: Any, owner: str, cls: type, indent: int) -> list[str]:
        names = {field.name for field in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        parts: list[str] = []
        for field in schema["fields"]:
            name = field["name"]
            if not name.isidentifier() or keyword.iskeyword(name) or name not in names:
                raise _Unsupported(f"{cls.__name__} has no attribute {name}")
            parts += self.value(field["type"], f"{owner}.{name}", hints[name], indent)
        return parts

    def local(self, value: str, indent: int) -> str:
        """``value`` (an expression) in a local variable, to be read more than once."""
        name = self.name("v")
        self.emit(indent, f"{name} = {value}")
        return name

    def value(self, schema: Any, value: str, hint: Any, indent: int) -> list[str]:
        if isinstance(schema, list):
            return self.union(schema, value, indent)
        kind = schema if isinstance(schema, str) else schema.get("type")
        logical = None if isinstance(schema, str) else schema.get("logicalType")
        if kind == "string" and logical is None:
            data = self.name("d")
            self.emit(indent, f"{data} = {value}.encode()")
            return self.sized(data, indent)
        if kind in ("int", "long") and logical is None:
            number = self.local(value, indent)
            return [f"(SMALL[{number}] if 0 <= {number} < {len(_SMALL)} else write_long({number}))"]
        if kind == "long" and logical == "timestamp-millis":
            return self.timestamp(value, indent)
        if kind == "bytes" and logical == "decimal":
            data = self.name("d")
            self.decimal(value, int(schema.get("scale", 0)), data, indent)
            return self.sized(data, indent)
        if kind == "array" and isinstance(schema["items"], dict):
            return self.array(schema["items"], value, hint, indent)
        raise _Unsupported(f"type {kind} ({logical})")

    def decimal(self, value: str, scale: int, data: str, indent: int) -> None:
        """The two's-complement big-endian unscaled value, as fastavro writes ``decimal``
        (and like fastavro, refuse a value with more decimals than the scale)."""
        scaled, unscaled = self.name("s"), self.name("i")
        self.emit(indent, f"{scaled} = {value}.scaleb({scale})")
        self.emit(indent, f"{unscaled} = int({scaled})")
        self.emit(indent, f"if {unscaled} != {scaled}:")
        self.emit(
            indent + 1, "raise ValueError('Scale provided in schema does not match the decimal')"
        )
        self.emit(
            indent,
            f"{data} = {unscaled}.to_bytes(({unscaled}.bit_length() + 8) // 8, 'big', signed=True)",
        )

    def timestamp(self, value: str, indent: int) -> list[str]:
        """:func:`write_millis` inlined (its cached tail, else the call) of the milliseconds
        since the epoch of an aware datetime, rounded down as fastavro does."""
        millis, zigzag, tail = self.name("t"), self.name("z"), self.name("tail")
        parts = [self.name("m"), self.name("m"), self.name("m")]
        self.emit(indent, f"{millis} = ({value} - EPOCH) // ONE_MS")
        self.emit(indent, f"{zigzag} = ({millis} << 1) ^ ({millis} >> 63)")
        self.emit(indent, f"{tail} = TAILS.get({zigzag} >> 14)")
        self.emit(indent, f"if {tail} is None:")
        self.emit(indent + 1, f"{parts[0]} = write_millis({millis})")
        self.emit(indent + 1, f"{parts[1]} = {parts[2]} = b''")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{parts[0]} = CONTINUED[{zigzag} & 0x7F]")
        self.emit(indent + 1, f"{parts[1]} = CONTINUED[{zigzag} >> 7 & 0x7F]")
        self.emit(indent + 1, f"{parts[2]} = {tail}")
        return parts

    def sized(self, data: str, indent: int) -> list[str]:
        """Avro ``bytes``/``string``: the length, then the bytes."""
        size = self.name("n")
        self.emit(indent, f"{size} = len({data})")
        return [f"(LENGTHS[{size}] if {size} < {_SHORT_LENGTHS} else write_long({size}))", data]

    def union(self, branches: list[Any], value: str, indent: int) -> list[str]:
        """The branch index, then the value: its parts are locals, empty when null."""
        others = [branch for branch in branches if branch != "null"]
        if len(branches) != 2 or len(others) != 1 or others[0] not in ("string", "long", "int"):
            raise _Unsupported(f"union {branches}")
        null_index, other_index = branches.index("null"), branches.index(others[0])
        value = self.local(value, indent)
        index = self.name("u")
        self.emit(indent, f"if {value} is None:")
        self.emit(indent + 1, f"{index} = {bytes(write_long(null_index))!r}")
        start = len(self.lines)
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{index} = {bytes(write_long(other_index))!r}")
        parts = []
        for part in self.value(others[0], value, None, indent + 1):
            local = self.name("b")
            self.emit(indent + 1, f"{local} = {part}")
            parts.append(local)
        self.lines.insert(start, "    " * (indent + 1) + " = ".join([*parts, "b''"]))
        return [index, *parts]

    def array(self, items: Any, value: str, hint: Any, indent: int) -> list[str]:
        """One block: the count, the items, then the empty block that ends the array."""
        item_cls = _item_dataclass(hint)
        if items.get("type") != "record" or item_cls is None:
            raise _Unsupported("array of anything but records of dataclasses")
        value = self.local(value, indent)
        encoded, collected, item = self.name("a"), self.name("p"), self.name("item")
        self.emit(indent, f"if {value}:")
        self.emit(indent + 1, f"{collected} = [write_long(len({value}))]")
        self.emit(indent + 1, f"for {item} in {value}:")
        parts = self.record(items, item, item_cls, indent + 2)
        self.emit(indent + 2, f"{collected} += ({', '.join(parts)})")
        self.emit(indent + 1, f"{collected}.append(b'\\x00')")
        self.emit(indent + 1, f"{encoded} = b''.join({collected})")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{encoded} = b'\\x00'")
        return [encoded]


def _item_dataclass(hint: Any) -> type | None:
    """``X`` of a ``tuple[X, ...]`` annotation when X is a dataclass."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = args[0]
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            return item
    return None


def compile_encoder(schema: Any, cls: type, prefix: bytes = b"") -> Encoder | None:
    """A function ``event -> prefix + Avro body`` for instances of dataclass ``cls``
    written with the fastavro-parsed record ``schema``; None when the schema holds
    anything this compiler does not cover (or a field ``cls`` does not have)."""
    generator = _Generator()
    try:
        parts = generator.record(schema, "event", cls, 1)
    except _Unsupported:
        return None
    source = "\n".join(
        [
            "def encode(event):",
            *generator.lines,
            f"    return b''.join(({prefix!r}, {', '.join(parts)}))",
        ]
    )
    namespace: dict[str, Any] = {
        "write_long": write_long,
        "write_millis": write_millis,
        "EPOCH": _EPOCH,
        "ONE_MS": _ONE_MS,
        "LENGTHS": _LENGTHS,
        "SMALL": _SMALL,
        "TAILS": _TAILS,
        "CONTINUED": _CONTINUED,
    }
    code = compile(source + "\n", f"<avro encoder {cls.__name__}>", "exec")
    # Safe: the source is generated above; the only text taken from the schema is field
    # names, which must be Python identifiers (checked in _Generator.record).
    exec(code, namespace)  # noqa: S102
    encoder: Encoder = namespace["encode"]
    return encoder
