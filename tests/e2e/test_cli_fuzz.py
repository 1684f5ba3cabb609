"""Fuzz pass over the whole ``shopstream`` CLI: every command, fed garbage.

Malformed arguments, bad numbers (negative, zero, huge, non-numeric, nan, inf), bad
offset specs, durations and times, malformed JSON Lines (from a file and from stdin),
bad URLs, unknown security settings and unreachable endpoints. Every case must end as
``main()`` promises: a non-zero exit code (2: bad input, bad configuration or nothing
answering), exactly one ``error: ...`` line on stderr (``produce file`` lists each bad
line as ``FILE:LINE: reason`` before it), never a traceback and never the catch-all
``error: unexpected ...`` of an exception no command mapped.

Most cases run in this process, through :func:`shopstream.cli.app.main`, with
stdout/stderr captured; a representative subset (one per command group) runs through
the real console script in a subprocess and must print the same.

Nothing here reaches a real service. Every endpoint is 127.0.0.1:1 (nothing listens
there: refused at once, checked first), the broker check waits 0.5 s instead of 10 s
and the registry client does not retry (in this process only). Every case of a command
with side effects (``stack up/down``, ``demo``, ``consume``, ``topics create``,
``schemas register``, ``db upgrade``, ``produce``) is invalid before it could act, or
its endpoints are unreachable; ``db upgrade`` only ever sees unreachable or malformed
URLs, a folder that does not exist, or a read-only (``mode=ro``) SQLite copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopstream import serde
from shopstream.cli.app import main
from shopstream.db.engine import make_engine
from shopstream.db.migrate import upgrade
from shopstream.events import EVENT_TYPES
from shopstream.inspection.offset_spec import parse_offset_spec
from shopstream.jsonl import validate_lines
from shopstream.kafka.clients import check_broker

pytestmark = pytest.mark.e2e

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
NOWHERE = "127.0.0.1:1"
UNREACHABLE_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": NOWHERE,
    "SCHEMA_REGISTRY_URL": f"http://{NOWHERE}/apis/ccompat/v7",
    "DATABASE_URL": f"postgresql://fuzz:secret@{NOWHERE}/fuzz",
}
BROKER_CHECK_S = 0.5
"""What ``check_broker`` waits in this process (10 s by default) for a broker."""
LISTED_LINE = re.compile(r"^.+:\d+: ")
"""``produce file`` lists every bad line as ``FILE:LINE: reason`` before its error."""
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- running the CLI ------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: object
    """The exit code (``SystemExit.code``); 0 when ``main()`` returned."""
    out: str
    err: str


def run_in_process(argv: Sequence[str], stdin: bytes = b"") -> Outcome:
    """``main(argv)`` with stdin fed and stdout/stderr captured; any other exception
    escaping ``main()`` fails the test."""
    out, err = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    code: object = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(argv))
            except SystemExit as exc:
                code = exc.code
            except Exception as exc:
                pytest.fail(f"{list(argv)!r}: {type(exc).__name__} escaped main(): {exc}")
    finally:
        sys.stdin = saved_stdin
    return Outcome(code, out.getvalue(), err.getvalue())


def run_console_script(
    command: Sequence[str], argv: Sequence[str | bytes], stdin: bytes = b""
) -> Outcome:
    done = subprocess.run(
        [*command, *argv],
        input=stdin,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=60,
        check=False,
    )
    return Outcome(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def assert_failed_cleanly(
    outcome: Outcome, what: object, *, listed: bool = False, code: int = 2
) -> None:
    """Exit ``code``; stderr is one ``error:`` line (after ``FILE:LINE:`` lines if
    ``listed``); no traceback anywhere; no exception that reached the catch-all."""
    shown = (
        f"{what!r}\nexit: {outcome.code!r}\nstdout: {outcome.out[-2000:]}\nstderr: {outcome.err}"
    )
    assert "Traceback" not in outcome.out + outcome.err, f"traceback from {shown}"
    assert outcome.code == code, f"expected exit {code} from {shown}"
    lines = outcome.err.splitlines()
    assert lines, f"nothing on stderr from {shown}"
    assert lines[-1].startswith("error: "), f"last stderr line is no error: line: {shown}"
    assert not lines[-1].startswith("error: unexpected "), f"unmapped exception: {shown}"
    assert outcome.err.endswith("\n"), f"error line not ended: {shown}"
    before = lines[:-1]
    if listed:
        assert all(LISTED_LINE.match(line) for line in before), f"stray stderr lines: {shown}"
    else:
        assert not before, f"more than one stderr line: {shown}"


# -- the environment: nothing answers -------------------------------------------------


def _refused(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as probe:
        probe.settimeout(2)
        try:
            probe.connect((host, int(port)))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


@dataclass(frozen=True)
class Places:
    """Paths the cases refer to as ``<FILES>`` and ``<RO_DB>``."""

    files: Path
    ro_db_file: Path

    @property
    def ro_db_url(self) -> str:
        return f"sqlite:///file:{self.ro_db_file}?mode=ro&uri=true"

    def fill(self, arg: str) -> str:
        return arg.replace("<FILES>", str(self.files)).replace("<RO_DB>", self.ro_db_url)


_RealRegistryClient = SchemaRegistryClient


def _registry_client_without_retries(conf: Mapping[str, Any]) -> Any:
    """The real client, but a refused connection fails at once (it retries 3 times)."""
    return _RealRegistryClient({"max.retries": 0, "timeout": 2, **conf})


@pytest.fixture(scope="module", autouse=True)
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Places]:
    """Every endpoint unreachable, a scratch cache/stack dir, the bad input files."""
    if not _refused(NOWHERE):
        pytest.skip(f"something answers at {NOWHERE}: the fuzz cases need it refused")
    root = tmp_path_factory.mktemp("fuzz")
    files = root / "files"
    files.mkdir()
    for name, content in BAD_FILES.items():
        (files / name).write_bytes(content)
    ro_db = root / "migrated.db"
    engine = make_engine(f"sqlite:///{ro_db}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("KAFKA_", "SCHEMA_REGISTRY_", "SHOPSTREAM_", "LOG_")) or (
                name == "DATABASE_URL"
            ):
                patch.delenv(name)
        for name, value in UNREACHABLE_ENV.items():
            patch.setenv(name, value)
        patch.setenv("SHOPSTREAM_TOPIC_PREFIX", f"fuzz-{uuid.uuid4().hex[:8]}-")
        patch.setenv("SHOPSTREAM_CACHE_DIR", str(root / "cache"))
        patch.setenv("SHOPSTREAM_STACK_DIR", str(root / "stack"))
        patch.setattr(check_broker, "__defaults__", (BROKER_CHECK_S,))
        patch.setattr(serde, "SchemaRegistryClient", _registry_client_without_retries)
        yield Places(files, ro_db)


# -- the cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes = b""
    listed: bool = False
    """``produce file`` lists the bad lines before its error line."""


def case(
    *argv: str, env: Mapping[str, str] | None = None, stdin: bytes = b"", listed: bool = False
) -> Any:
    shown = " ".join(repr(a) if (not a or " " in a) else a for a in argv)
    if env:
        shown = " ".join(f"{k}={v}" for k, v in env.items()) + " " + shown
    return pytest.param(Case(argv, env or {}, stdin, listed), id=shown[:120])


def _line(data: object) -> bytes:
    return json.dumps(data).encode() + b"\n"


_CART = {"type": "CartItemAdded", "cart_id": "c", "customer_id": "u", "sku": "S"}
_PAID = {"type": "OrderPaid", "order_id": "o", "payment_id": "p", "currency": "EUR"}
BAD_FILES: dict[str, bytes] = {
    "not-json.jsonl": b"{not json}\n",
    "array.jsonl": b"[1, 2, 3]\n",
    "string.jsonl": b'"OrderPaid"\n',
    "null.jsonl": b"null\n",
    "no-type.jsonl": b'{"order_id": "o"}\n',
    "unknown-type.jsonl": b'{"type": "__class__", "order_id": "o"}\n',
    "type-list.jsonl": b'{"type": ["OrderPaid"]}\n',
    "extra-field.jsonl": _line({"type": "OrderConfirmed", "order_id": "o", "zzz": 1}),
    "missing-field.jsonl": _line({"type": "OrderShipped", "order_id": "o"}),
    "nan-amount.jsonl": b'{"type":"OrderPaid","order_id":"o","payment_id":"p","amount":NaN}\n',
    "inf-amount.jsonl": b'{"type":"OrderPaid","order_id":"o","payment_id":"p","amount":1e999}\n',
    "float-amount.jsonl": _line({**_PAID, "amount": 12.5}),
    "money-words.jsonl": _line({**_PAID, "amount": "twelve"}),
    "money-snan.jsonl": _line({**_PAID, "amount": "sNaN"}),
    "money-exp.jsonl": _line({**_PAID, "amount": "1E+999999999"}),
    "money-negative.jsonl": _line({**_PAID, "amount": "-1.00"}),
    "money-cents.jsonl": _line({**_PAID, "amount": "1.001"}),
    "currency.jsonl": _line({**_PAID, "amount": "1.00", "currency": "€€€"}),
    "quantity-zero.jsonl": _line({**_CART, "quantity": 0, "unit_price": "1.00"}),
    "quantity-bool.jsonl": _line({**_CART, "quantity": True, "unit_price": "1.00"}),
    "quantity-huge.jsonl": _line({**_CART, "quantity": 10**30, "unit_price": "1.00"}),
    "quantity-float.jsonl": _line({**_CART, "quantity": 1.5, "unit_price": "1.00"}),
    "digits-5000.jsonl": b'{"type": "OrderConfirmed", "order_id": "o", "x": '
    + b"9" * 5000
    + b"}\n",
    "nested-deep.jsonl": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "nested-type.jsonl": b'{"type": ' + b"[" * 5000 + b"]" * 5000 + b"}\n",
    "time-words.jsonl": _line({"type": "OrderConfirmed", "order_id": "o", "occurred_at": "now"}),
    "time-number.jsonl": _line({"type": "OrderConfirmed", "order_id": "o", "occurred_at": 1e300}),
    "time-year-0.jsonl": _line(
        {"type": "OrderConfirmed", "order_id": "o", "occurred_at": "0001-01-01T00:00:00+14:00"}
    ),
    "time-year-10000.jsonl": _line(
        {"type": "OrderConfirmed", "order_id": "o", "occurred_at": "9999-12-31T23:59:59-14:00"}
    ),
    "event-id.jsonl": _line({"type": "OrderConfirmed", "order_id": "o", "event_id": "x"}),
    "empty-id.jsonl": _line({"type": "OrderConfirmed", "order_id": " "}),
    "surrogate.jsonl": b'{"type": "OrderConfirmed", "order_id": "\\ud800"}\n',
    "lines-empty.jsonl": _line(
        {
            "type": "OrderCreated",
            "order_id": "o",
            "customer_id": "c",
            "lines": [],
            "total": "0.00",
            "currency": "EUR",
        }
    ),
    "lines-null.jsonl": _line(
        {
            "type": "OrderCreated",
            "order_id": "o",
            "customer_id": "c",
            "lines": [None],
            "total": "0.00",
            "currency": "EUR",
        }
    ),
    "not-utf8.jsonl": b'{"type": "\xff"}\n',
    "binary.jsonl": bytes(range(256)) * 4,
    "bom-twice.jsonl": "\ufeff\ufeff{}\n".encode(),
    "one-bad-of-two.jsonl": _line({"type": "OrderConfirmed", "order_id": "o"}) + b"{\n",
    "crlf-bad.jsonl": b'{"type": "OrderConfirmed"}\r\n\r\n{\r\n',
}
"""Every file has at least one invalid line."""

# (Click takes whatever int() and float() take: "1_0" and "\u0661\u0662" are numbers.)
NUMBERS_THAT_ARE_NOT = ["x", "", " ", "1e3", "0x10", "1.0", "1 2", "nan", "inf", "\u00b2"]
FLOATS_THAT_ARE_NOT = ["x", "", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "1,5"]
BAD_OFFSETS = [
    "@yesterday",
    "--5",
    "+x",
    "1e3",
    "@-1y",
    "beginning+1",
    "",
    " ",
    "latest",
    "BEGINNING",
    "-",
    "+",
    "@",
    "@-",
    "@-1",
    "@+1h",
    "@-1h-1m",
    "5m",
    "1.5",
    "0x10",
    "-0x1",
    "+-1",
    "--1",
    "\u00b2",
    "\u0663\u0663x",
    "é",
    "\u202e5",
    "\x00",
    "\U0001d7d3",
    "9" * 5000,
    "-" + "9" * 5000,
    "@" + "9" * 5000,
    "9223372036854775808",
    "+9223372036854775808",
    "@99999999999999999999",
    "@-99999999999d",
    "@-1d" * 1000,
    "@0001-01-01T00:00:00+14:00",
    "@1969-12-31T23:59:59Z",
    "@2026-13-01",
    "@2026-02-30T00:00:00Z",
    "@2026-01-01T25:00",
    "x" * 10_000,
]
BAD_DURATIONS = [
    "",
    " ",
    "x",
    "0",
    "-5m",
    "5",
    "5x",
    "1e3",
    "m",
    "30 m",
    "1h-30m",
    "1.5h",
    "\u0661m",
    "\u00b2m",
    "99999999999d",
    "9" * 5000 + "s",
    "30m" * 1000 + "x",
    "\x00",
    "PT30M",
]
BAD_AS_OF = [
    "yesterday",
    "",
    " ",
    "2026-13-01",
    "2026-02-30",
    "now+1h",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "12:00",
    "\x00",
    "9" * 5000,
]

GLOBAL_CASES = [
    case("nosuchcommand"),
    case("--bogus"),
    case("--bootstrap-servers"),
    case("--bootstrap-servers", "", "inspect", "topics"),
    case("--bootstrap-servers", "nohost", "inspect", "topics"),
    case("--bootstrap-servers", "host:port", "topics", "list"),
    case("--bootstrap-servers", ",", "produce", "order", "confirm", "--order-id", "o"),
    case("--bootstrap-servers", "127.0.0.1:1,", "consume", "order-state"),
    case("--bootstrap-servers", "a:1,b", "simulate"),
    case("--registry-url", "", "schemas", "check"),
    case("--registry-url", "ftp://u:secret@x", "schemas", "register"),
    case("--registry-url", "http://", "inspect", "schemas"),
    case("--registry-url", "http://[::1", "inspect", "schemas"),
    case("--registry-url", "http://h:99999/x", "inspect", "schemas"),
    case("--registry-url", "http://h:port/x", "schemas", "register"),
    case("--registry-url", "localhost:8081", "produce", "order", "confirm", "--order-id", "o"),
    case("--database-url", "", "query", "orders"),
    case("--database-url", "not a url", "db", "upgrade"),
    case("--database-url", "mysql://u:p@h/db", "db", "upgrade"),
    case("--database-url", "postgresql://u:p@[::1/db", "db", "upgrade"),
    case("--database-url", "postgresql://u:p@127.0.0.1:99999/db", "db", "upgrade"),
    case("--database-url", "postgresql://u:p@127.0.0.1:1/db", "db", "upgrade"),
    case("--database-url", "sqlite:////nonexistent-dir/fuzz.db", "db", "upgrade"),
    case("--database-url", "sqlite:////nonexistent-dir/fuzz.db", "db", "current"),
    case("--database-url", "sqlite:////nonexistent-dir/fuzz.db", "query", "summary"),
    case("--database-url", "sqlite:////nonexistent-dir/fuzz.db", "consume", "sales-projection"),
    case("--log-format", "xml", "config", "show"),
    case("--log-level", "TRACE", "config", "show"),
    case("--log-level", "", "config", "show"),
    case("config", "show", env={"KAFKA_SECURITY_PROTOCOL": "BOGUS"}),
    case("inspect", "topics", env={"KAFKA_SECURITY_PROTOCOL": "PLAINTEXTX"}),
    case("topics", "list", env={"KAFKA_SECURITY_PROTOCOL": "tls"}),
    case("config", "show", env={"KAFKA_SASL_MECHANISM": "MD5"}),
    case("config", "show", env={"LOG_LEVEL": "LOUD"}),
    case("config", "show", env={"LOG_FORMAT": "yaml"}),
    case("config", "show", env={"SHOPSTREAM_TOPIC_PREFIX": "bad prefix/"}),
    case("config", "show", env={"KAFKA_BOOTSTRAP_SERVERS": "localhost"}),
    case("config", "show", env={"SCHEMA_REGISTRY_URL": "http://u:secret@[::1"}),
    case("config", "show", env={"DATABASE_URL": "oracle://u@h/db"}),
    case(
        "inspect",
        "topics",
        "--timeout",
        "0.2",
        env={"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"},
    ),
    case(
        "topics",
        "list",
        env={"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"},
    ),
    case(
        "produce",
        "order",
        "confirm",
        "--order-id",
        "o",
        env={"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN"},
    ),
    case(
        "stack",
        "check",
        "--timeout",
        "0.5",
        env={"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"},
    ),
    case(
        "inspect",
        "schemas",
        env={
            "SCHEMA_REGISTRY_URL": f"https://{NOWHERE}/x",
            "SCHEMA_REGISTRY_SSL_CA_LOCATION": "/nonexistent/ca.pem",
        },
    ),
    case("schemas", "check", env={"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "no-colon"}),
]

STACK_CASES = [
    case("stack", "sideways"),
    case("stack", "up", "--kafka-port", "0"),
    case("stack", "up", "--kafka-port", "-1"),
    case("stack", "up", "--kafka-port", "65536"),
    case("stack", "up", "--kafka-port", "99999999999999999999999"),
    case("stack", "up", "--kafka-port", "x"),
    case("stack", "up", "--kafka-port", "nan"),
    case("stack", "up", "--controller-port", ""),
    case("stack", "up", "--registry-port", "1e3"),
    case("stack", "up", "--registry-management-port", "0"),
    case("stack", "up", "--postgres-port", "-5"),
    case("stack", "up", "--postgres", "yes"),
    case("stack", "up", "--bogus"),
    case("stack", "down", "--purge", "now"),
    case("stack", "down", "--bogus"),
    case("stack", "status", "--json", "extra"),
    case("stack", "status", "--state-dir"),
    case("stack", "check", "--timeout", "0"),
    case("stack", "check", "--timeout", "-1"),
    case("stack", "check", "--timeout", "nan"),
    case("stack", "check", "--timeout", "inf"),
    case("stack", "check", "--timeout", "x"),
    case("stack", "check", "--timeout", "0.5"),  # nothing answers
]

TOPICS_CASES = [
    case("topics", "create", "--partitions", "0"),
    case("topics", "create", "--partitions", "-1"),
    case("topics", "create", "--partitions", "x"),
    case("topics", "create", "--partitions", "nan"),
    case("topics", "create", "--partitions", "1.5"),
    case("topics", "create", "--replication-factor", "0"),
    case("topics", "create", "extra"),
    case("topics", "create"),  # nothing answers
    case("topics", "list", "--json", "extra"),
    case("topics", "list"),  # nothing answers
    case("topics", "describe"),
    case("topics", "describe", "cart-events"),  # nothing answers
]

SCHEMAS_CASES = [
    case("schemas", "register", "--topic-prefix", "a b"),
    case("schemas", "register", "--topic-prefix", "é"),
    case("schemas", "register", "extra"),
    case("schemas", "register"),  # nothing answers
    case("schemas", "check", "--topic-prefix", "/"),
    case("schemas", "check", "--topic-prefix", "x" * 10_000 + "!"),
    case("schemas", "check"),  # nothing answers
    case("schemas", "list", "--topic-prefix", "\x00"),
    case("schemas", "list", "--fields", "yes"),
]

DB_CASES = [
    case("db", "upgrade", "--revision"),
    case("db", "upgrade", "--revision", ""),
    case("db", "upgrade", "extra"),
    case("db", "upgrade"),  # PostgreSQL at 127.0.0.1:1
    case("db", "current", "extra"),
    case("db", "current"),  # PostgreSQL at 127.0.0.1:1
    *(
        case("--database-url", "<RO_DB>", "db", "upgrade", "--revision", revision)
        for revision in ("", " ", "bogus", "-1", "0001:0002", "..", "head+1", "heads@x", "é")
    ),
]

_ADD = ("produce", "cart", "add-item", "--customer-id", "c", "--sku", "S")
_CREATE = ("produce", "order", "create", "--customer-id", "c")
PRODUCE_CASES = [
    case("produce", "order", "refund", "--order-id", "o"),
    case(*_ADD),
    *(
        case(*_ADD, "--unit-price", price)
        for price in [
            "",
            "abc",
            "NaN",
            "sNaN",
            "-Infinity",
            "1e99999999999",
            "-1",
            "1.001",
            "1,50",
            "\u0661",
        ]
    ),
    *(
        case(*_ADD, "--unit-price", "1", "--quantity", n)
        for n in ["0", "-5", "99999999999999999999999", "2147483648", *NUMBERS_THAT_ARE_NOT]
    ),
    case(*_ADD, "--unit-price", "1", "--currency", "euro"),
    case(*_ADD, "--unit-price", "1", "--currency", ""),
    case(*_ADD, "--unit-price", "1", "--occurred-at", "yesterday"),
    case(*_ADD, "--unit-price", "1", "--occurred-at", ""),
    case(*_ADD, "--unit-price", "1", "--occurred-at", "0001-01-01T00:00:00+14:00"),
    case(*_ADD, "--unit-price", "1", "--occurred-at", "9999-12-31T23:59:59-14:00"),
    case(*_ADD, "--unit-price", "1", "--event-id", "not-a-uuid"),
    case(*_ADD, "--unit-price", "1", "--correlation-id", " "),
    case(*_ADD, "--unit-price", "1", "--cart-id", "\ud800"),
    case(*_ADD, "--unit-price", "1", "--topic-prefix", "bad prefix/"),
    case("produce", "cart", "add-item", "--customer-id", "", "--sku", "S", "--unit-price", "1"),
    case(
        "produce",
        "cart",
        "remove-item",
        "--cart-id",
        "c",
        "--customer-id",
        "c",
        "--sku",
        "S",
        "--quantity",
        "0",
    ),
    case("produce", "cart", "remove-item", "--cart-id", "c", "--customer-id", "c"),
    case("produce", "cart", "checkout", "--cart-id", "", "--customer-id", "c"),
    case("produce", "cart", "checkout", "--cart-id", "c"),
    case(*_CREATE),
    *(
        case(*_CREATE, "--line", line)
        for line in [
            "",
            "x",
            "a:b:c",
            "a:1:x",
            ":1:1",
            "a:0:1",
            "a:-1:1",
            "a:99999999999999999999:1",
            "a:1:1.001",
            "a:1:-1",
            "a:1:nan",
            "a:\u00b2:1",
            "a:1:1:",
            "a::1",
        ]
    ),
    case(*_CREATE, "--line", "a:1:1", "--total", "nan"),
    case(*_CREATE, "--line", "a:1:1", "--total", "2"),
    case(*_CREATE, "--line", "a:1:1", "--total", ""),
    case(*_CREATE, "--line", "a:1:1", "--coupon-code", " "),
    case("produce", "order", "pay", "--order-id", "o", "--amount", "-1"),
    case("produce", "order", "pay", "--order-id", "o", "--amount", ""),
    case("produce", "order", "pay", "--order-id", "o", "--amount", "Infinity"),
    case("produce", "order", "pay", "--order-id", "o"),
    case("produce", "order", "confirm", "--order-id", ""),
    case("produce", "order", "confirm", "--order-id", "o", "--json", "yes"),
    case("produce", "order", "ship", "--order-id", "o", "--carrier", "", "--tracking-number", "t"),
    case("produce", "order", "ship", "--order-id", "o", "--carrier", "DHL"),
    case("produce", "order", "cancel", "--order-id", "o", "--reason", ""),
    case("produce", "order", "cancel", "--order-id", "o"),
    case("produce", "order", "confirm", "--order-id", "o"),  # valid: nothing answers
    case("produce", "file"),
    case("produce", "file", ""),
    case("produce", "file", "/nonexistent/events.jsonl"),
    case("produce", "file", "/"),
    case("produce", "file", "<FILES>/not-json.jsonl", "--topic-prefix", "bad prefix/", listed=True),
    *(case("produce", "file", f"<FILES>/{name}", listed=True) for name in BAD_FILES),
    *(case("produce", "file", "--dry-run", f"<FILES>/{name}", listed=True) for name in BAD_FILES),
    *(
        case("produce", "file", "-", stdin=BAD_FILES[name], listed=True)
        for name in (
            "not-json.jsonl",
            "nested-deep.jsonl",
            "digits-5000.jsonl",
            "binary.jsonl",
            "time-year-0.jsonl",
            "one-bad-of-two.jsonl",
        )
    ),
    case("produce", "file", "--dry-run", "-", stdin=b"{}\n" * 1000, listed=True),
]

SIMULATE_CASES = [
    *(case("simulate", "--orders", n) for n in ["0", "-1", *NUMBERS_THAT_ARE_NOT]),
    *(case("simulate", "--customers", n) for n in ["0", "-1", "x", "nan"]),
    *(case("simulate", "--duration", d) for d in ["0", "-1", "0.0001", *FLOATS_THAT_ARE_NOT]),
    *(case("simulate", "--rate", r) for r in ["-1", "-0.001", *FLOATS_THAT_ARE_NOT]),
    *(case("simulate", "--invalid-rate", r) for r in ["-0.1", "1.01", "2", *FLOATS_THAT_ARE_NOT]),
    case("simulate", "--seed", "x"),
    case("simulate", "--seed", "1.5"),
    case("simulate", "--orders", "5", "--duration", "5"),
    case("simulate", "--no-produce"),
    case("simulate", "--output", "/nonexistent-dir/events.jsonl", "--no-produce"),
    case("simulate", "--output", "/", "--no-produce"),
    case("simulate", "--topic-prefix", "bad prefix/", "--orders", "1"),
    case("simulate", "--orders", "1"),  # valid: nothing answers
    case("simulate", "extra"),
    case("simulate", "--via-api", "ftp://127.0.0.1:1"),
    case("simulate", "--via-api", "http://127.0.0.1:1"),  # valid: nothing answers
    case("simulate", "--via-api", "http://127.0.0.1:1", "--output", "x.jsonl"),
    *(case("simulate", "--via-api", "http://127.0.0.1:1", "--concurrency", c) for c in ["0", "x"]),
]

SERVICES_CASES = [
    *(case("serve", "--port", p) for p in ["x", "-1", "65536", "1e3"]),
    *(case("serve", "--relay-batch", n) for n in ["0", "-1", "x"]),
    *(case("serve", "--shutdown-timeout", t) for t in ["-1", *FLOATS_THAT_ARE_NOT]),
    *(case("serve", "--workers", n) for n in ["0", "65", "x"]),
    case("serve", "--relay", "yes"),
    case("serve"),  # valid: nothing answers
    case("serve", "--no-relay"),  # valid: nothing answers
    *(case("relay", "--http-port", p) for p in ["x", "-2", "65536"]),
    *(case("relay", "--batch", n) for n in ["0", "x"]),
    case("relay"),  # valid: nothing answers
    case("inspect", "outbox", "--sample", "0"),
    case("inspect", "outbox"),  # valid: nothing answers
]

CONSUME_CASES = [
    case("consume"),
    case("consume", "nope"),
    case("consume", "order-state", "nope"),
    case("consume", ""),
    case("consume", "rebuild"),
    case("consume", "rebuild", "nope"),
    case("consume", "rebuild", "rebuild"),
    *(
        case("consume", "--batch-size", n, "order-state")
        for n in ["0", "-1", *NUMBERS_THAT_ARE_NOT]
    ),
    *(case("consume", "--batch-wait", w, "order-state") for w in ["-1", *FLOATS_THAT_ARE_NOT]),
    *(case("consume", "--http-port", p, "order-state") for p in ["x", "65536", "99999", "1e3"]),
    case("consume", "--until-caught-up", "yes", "order-state"),
    case("consume", "order-state"),  # valid: nothing answers
    case("consume", "rebuild", "cart-projection"),  # valid: nothing answers
]

_PEEK = ("inspect", "peek", "cart-events", "--timeout", "0.1")
INSPECT_CASES = [
    case("inspect", "everything"),
    *(case(*_PEEK, f"--offset={offset}") for offset in BAD_OFFSETS),
    *(
        case("inspect", command, "t", "--timeout", "0.1", f"--offset={offset}")
        for command in ("tail", "dlq")
        for offset in ["@yesterday", "--5", "\u00b2", "@-1y", "beginning+1", "9" * 5000]
    ),
    *(case(*_PEEK, "--timeout", t) for t in ["0", "0.01", "-1", *FLOATS_THAT_ARE_NOT]),
    *(case(*_PEEK, "--count", n) for n in ["0", "-1", *NUMBERS_THAT_ARE_NOT]),
    *(case(*_PEEK, "--partition", p) for p in ["-1", "x", "nan"]),
    case(*_PEEK, "--partition", "99999999999999999999999"),  # nothing answers
    case(*_PEEK, "--count", "99999999999999999999999"),  # nothing answers
    case(*_PEEK, "--format", "xml"),
    case(*_PEEK, "-f", ""),
    case("inspect", "peek"),
    case("inspect", "peek", "--timeout", "0.1"),
    case(*_PEEK),  # nothing answers
    case("inspect", "tail", "t", "--timeout", "0.1", "--no-follow"),  # nothing answers
    case("inspect", "topics", "--format", "yaml"),
    case("inspect", "topics", "--timeout", "0.1"),  # nothing answers
    case("inspect", "topic"),
    case("inspect", "topic", "t", "--timeout", "0.1"),  # nothing answers
    case("inspect", "groups", "--timeout", "nan"),
    case("inspect", "groups", "--timeout", "0.1"),  # nothing answers
    case("inspect", "lag"),
    case("inspect", "lag", "g", "--timeout", "0.1"),  # nothing answers
    case("inspect", "schemas", "--version", "0"),
    case("inspect", "schemas", "--version", "x"),
    case("inspect", "schemas", "--version", "1"),
    case("inspect", "schemas", "subject", "--version", "-1"),
    case("inspect", "schemas"),  # nothing answers
    case("inspect", "schemas", "order-events-x", "--version", "99999999999999999999"),
    case("inspect", "dlq"),
    case("inspect", "dlq", "t", "--count", "0"),
    case("inspect", "dlq", "t", "--timeout", "0.1"),  # nothing answers
]

QUERY_CASES = [
    case("query", "everything"),
    *(case("query", "orders", "--limit", n) for n in ["0", "-1", *NUMBERS_THAT_ARE_NOT]),
    *(case("query", "sales", "--top", n) for n in ["0", "-5", "x", "nan"]),
    case("query", "customers", "-n", "0"),
    case("query", "orders", "--format", "csv"),
    case("query", "carts", "--status", "BOGUS"),
    case("query", "carts", "--status", "active"),
    *(case("query", "carts", "--abandoned-after", d) for d in BAD_DURATIONS),
    *(case("query", "summary", "--abandoned-after", d) for d in BAD_DURATIONS[:6]),
    *(case("query", "carts", "--as-of", a) for a in BAD_AS_OF),
    *(case("query", "summary", "--as-of", a) for a in BAD_AS_OF[:4]),
    case("query", "order"),
    case("query", "order", "o"),  # PostgreSQL at 127.0.0.1:1
    case("query", "orders"),  # PostgreSQL at 127.0.0.1:1
    case("query", "orders", "--limit", "99999999999999999999"),
    *(
        case("--database-url", "<RO_DB>", "query", *args)
        for args in (
            ("orders", "--limit", "9223372036854775808"),
            ("orders", "--limit", "99999999999999999999999999"),
            ("carts", "--limit", "99999999999999999999999999"),
            ("sales", "--top", "99999999999999999999999999"),
            ("customers", "--top", "99999999999999999999999999"),
            ("summary", "--top", "99999999999999999999999999"),
            ("carts", "--as-of", "0001-01-01T00:00:00+14:00"),
            ("carts", "--abandoned-after", "99999999999d"),
            ("summary", "--as-of", "9999-12-31T23:59:59-14:00"),
        )
    ),
]

DEMO_CASES = [
    *(case("demo", "--orders", n) for n in ["0", "-1", "x", "1.5", ""]),
    *(case("demo", "--customers", n) for n in ["0", "-1", "nan"]),
    *(case("demo", "--invalid-rate", r) for r in ["-0.1", "1.5", *FLOATS_THAT_ARE_NOT]),
    case("demo", "--seed", "x"),
    case("demo", "--keep-stack", "yes"),
    case("demo", "--bogus"),
    case("demo", "extra"),
]

CONFIG_CASES = [
    case("config", "show", "--json", "extra"),
    case("config", "show", "--yaml"),
    case("config", "hide"),
]

ALL_CASES = [
    *GLOBAL_CASES,
    *CONFIG_CASES,
    *STACK_CASES,
    *TOPICS_CASES,
    *SCHEMAS_CASES,
    *DB_CASES,
    *PRODUCE_CASES,
    *SIMULATE_CASES,
    *SERVICES_CASES,
    *CONSUME_CASES,
    *INSPECT_CASES,
    *QUERY_CASES,
    *DEMO_CASES,
]


@contextlib.contextmanager
def extra_env(env: Mapping[str, str]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield


@pytest.mark.parametrize("fuzz", ALL_CASES)
def test_bad_input_fails_with_one_error_line(fuzz: Case, places: Places) -> None:
    argv = [places.fill(arg) for arg in fuzz.argv]
    before = hashlib.sha256(places.ro_db_file.read_bytes()).hexdigest()
    with extra_env(fuzz.env):
        outcome = run_in_process(argv, fuzz.stdin)
    assert_failed_cleanly(outcome, argv, listed=fuzz.listed)
    assert hashlib.sha256(places.ro_db_file.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    "group",
    [
        (),
        ("config",),
        ("stack",),
        ("topics",),
        ("schemas",),
        ("db",),
        ("produce",),
        ("produce", "cart"),
        ("produce", "order"),
        ("inspect",),
        ("query",),
    ],
    ids=lambda group: " ".join(group) or "shopstream",
)
def test_a_group_without_a_command_prints_its_help(group: tuple[str, ...]) -> None:
    outcome = run_in_process(list(group))
    assert (outcome.code, outcome.err) == (0, "")
    assert f"Usage: {' '.join(['shopstream', *group])} " in outcome.out


# -- the real console script ----------------------------------------------------------

CONSOLE_CASES = [
    case("nosuchcommand"),
    case("--bootstrap-servers", "nohost", "inspect", "topics"),
    case("config", "show", env={"KAFKA_SECURITY_PROTOCOL": "BOGUS"}),
    case("stack", "up", "--kafka-port", "0"),
    case("topics", "create", "--partitions", "0"),
    case("schemas", "list", "--topic-prefix", "a b"),
    case("db", "current"),
    case("produce", "order", "create", "--customer-id", "c", "--line", "x"),
    case("produce", "file", "-", stdin=b'{"type": "OrderPaid"}\n[\n', listed=True),
    case("simulate", "--duration", "nan"),
    case("consume", "nope"),
    case("inspect", "peek", "t", "--offset=@yesterday"),
    case("inspect", "topics", "--timeout", "0.2"),
    case("query", "carts", "--abandoned-after", "5x"),
    case("demo", "--orders", "0"),
    case("serve", "--port", "65536"),
    case("relay", "--batch", "0"),
]


@pytest.mark.parametrize("fuzz", CONSOLE_CASES)
def test_console_script_prints_the_same(fuzz: Case, places: Places) -> None:
    argv = [places.fill(arg) for arg in fuzz.argv]
    with extra_env(fuzz.env):
        real = run_console_script([SHOPSTREAM], argv, fuzz.stdin)
        same = run_in_process(argv, fuzz.stdin)
    assert_failed_cleanly(real, argv, listed=fuzz.listed)
    assert (real.code, real.err) == (same.code, same.err)


def test_python_dash_m_and_bytes_that_are_not_utf8() -> None:
    """``python -m shopstream`` is the same entry point; argv that is not UTF-8 (it
    arrives as surrogate escapes) is still one error line."""
    for argv in (
        [b"inspect", b"peek", b"t", b"--offset=\xff"],
        [b"produce", b"file", b"/nonexistent/\xff.jsonl"],
        [b"schemas", b"list", b"--topic-prefix", b"\xff"],
    ):
        outcome = run_console_script([sys.executable, "-m", "shopstream"], argv)
        assert_failed_cleanly(outcome, argv)


# -- generated garbage ----------------------------------------------------------------

_offset_like = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[@+-]{0,2}[0-9]{0,25}(ms|s|m|h|d|w|y)?", fullmatch=True),
    st.from_regex(r"@-?([0-9]{1,20}(ms|s|m|h|d|w)){1,3}", fullmatch=True),
    st.from_regex(
        r"@[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}(T[0-9:]{1,8})?([+-][0-9]{2}:[0-9]{2}|Z)?",
        fullmatch=True,
    ),
)


@settings(HYPOTHESIS, max_examples=100)
@given(_offset_like)
def test_generated_offset_specs(text: str) -> None:
    outcome = run_in_process([*_PEEK, f"--offset={text}"])
    assert_failed_cleanly(outcome, text)
    try:
        parse_offset_spec(text)
    except Exception:
        assert "invalid offset" in outcome.err  # refused before any connection
    else:
        assert "Kafka broker unreachable" in outcome.err


_duration_like = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"-?([0-9]{1,15}[smhdw ]?){1,3}", fullmatch=True),
)


@settings(HYPOTHESIS, max_examples=100)
@given(_duration_like, st.one_of(st.none(), st.text(max_size=30), st.datetimes().map(str)))
def test_generated_durations_and_moments(duration: str, as_of: str | None) -> None:
    argv = ["query", "carts", "--abandoned-after", duration]
    if as_of is not None:
        argv += ["--as-of", as_of]
    assert_failed_cleanly(run_in_process(argv), argv)


_number_like = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats().map(str),
    st.sampled_from(NUMBERS_THAT_ARE_NOT + FLOATS_THAT_ARE_NOT),
    st.text(max_size=8),
)


@HYPOTHESIS
@given(_number_like, _number_like, _number_like)
def test_generated_numbers(first: str, second: str, third: str) -> None:
    # each command below is invalid whatever the numbers: --no-produce without --output,
    # a currency that is not one, a database that does not answer
    for argv in (
        [
            "simulate",
            "--no-produce",
            "--rate",
            first,
            "--invalid-rate",
            second,
            "--duration",
            third,
        ],
        [*_ADD, "--currency", "euro", "--quantity", first, "--unit-price", second],
        [*_CREATE, "--currency", "euro", "--line", f"S:{first}:{second}", "--total", third],
        ["query", "orders", "--limit", first],
        ["consume", "nope", "--batch-size", first, "--batch-wait", second, "--http-port", third],
    ):
        assert_failed_cleanly(run_in_process(argv), argv)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_field_names = st.sampled_from(
    [
        "type",
        "event_id",
        "occurred_at",
        "correlation_id",
        "cart_id",
        "customer_id",
        "sku",
        "quantity",
        "unit_price",
        "currency",
        "order_id",
        "lines",
        "total",
        "amount",
        "payment_id",
        "carrier",
        "tracking_number",
        "reason",
        "coupon_code",
    ]
)
_event_like = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(sorted(EVENT_TYPES)),
    st.dictionaries(_field_names.filter(lambda n: n != "type"), _json_values, max_size=8),
)
_json_line = st.one_of(
    _event_like.map(lambda d: json.dumps(d).encode()),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
)


@settings(HYPOTHESIS, max_examples=100)
@given(lines=st.lists(_json_line, min_size=1, max_size=6), from_stdin=st.booleans())
def test_generated_json_lines(places: Places, lines: list[bytes], from_stdin: bool) -> None:
    """Dry runs: a file of valid events only is accepted, anything else is listed line
    by line and refused; nothing is ever sent."""
    data = b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"
    if from_stdin:
        outcome = run_in_process(["produce", "file", "--dry-run", "-"], data)
    else:
        path = places.files / f"generated-{uuid.uuid4().hex}.jsonl"
        path.write_bytes(data)
        try:
            outcome = run_in_process(["produce", "file", "--dry-run", str(path)])
        finally:
            path.unlink()
    if validate_lines(io.BytesIO(data)).ok:
        assert (outcome.code, outcome.err) == (0, ""), outcome
    else:
        assert_failed_cleanly(outcome, data, listed=True)
