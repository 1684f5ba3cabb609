"""Schema administration against the registry: register, set compatibility, check.

Subjects (TopicRecordNameStrategy) are kept at BACKWARD_TRANSITIVE compatibility: a
consumer using a new version can read the data of every older version. With the
project's rule for evolving (only add optional fields with defaults) old consumers
read new events too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import EventSchema, SchemaCatalog, load_catalog
from shopstream.config import Settings, mask_url_password
from shopstream.errors import ConfigError, ConnectionFailed, ShopstreamError
from shopstream.serde import (
    SUBJECT_NOT_FOUND,
    is_not_found,
    make_registry_client,
    registry_error_text,
)

COMPATIBILITY = "BACKWARD_TRANSITIVE"


class IncompatibleSchema(ShopstreamError):
    """A local schema that the registry would refuse under its compatibility rule."""


class RegistryMisconfigured(ConfigError):
    """Something answers at SCHEMA_REGISTRY_URL, but not a Confluent-compatible registry
    API (a wrong path, refused credentials): nothing may be read or written."""


CHECK_TIMEOUT_S = 5
"""How long the start-up check waits for the registry's answer."""


def check_registry(settings: Settings, timeout_s: int = CHECK_TIMEOUT_S) -> int:
    """Fail fast unless the Confluent-compatible API answers at SCHEMA_REGISTRY_URL;
    the number of subjects it lists.

    Every command that reads or writes schemas calls this before touching anything.
    Any HTTP error is :class:`RegistryMisconfigured` (exit 2): a 404 here is not
    "schema not found" (Confluent error codes 40401/40403 name a subject or id, and
    listing subjects names neither) but a URL without the API path, e.g. Apicurio's
    root instead of ``.../apis/ccompat/v7``. No answer at all is
    :class:`~shopstream.errors.ConnectionFailed` (exit 2), which the consumer
    daemon treats as an outage to wait out.
    """
    shown = mask_url_password(settings.schema_registry_url)
    client = make_registry_client(
        {**settings.registry_config(), "timeout": timeout_s, "max.retries": 0}
    )
    try:
        return len(client.get_subjects())
    except SchemaRegistryError as exc:
        status = exc.http_status_code
        if status in {401, 403}:
            raise RegistryMisconfigured(
                f"schema registry at {shown} refused the request (HTTP {status}); "
                "check SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"
            ) from None
        if status == 404:
            raise RegistryMisconfigured(
                f"no Confluent-compatible registry API at {shown} (HTTP 404 listing subjects); "
                "SCHEMA_REGISTRY_URL must include the API path, for Apicurio "
                "http://HOST:PORT/apis/ccompat/v7"
            ) from None
        if status < 500:
            raise RegistryMisconfigured(
                f"schema registry at {shown} answered HTTP {status} listing subjects "
                f"({registry_error_text(exc)}); check SCHEMA_REGISTRY_URL"
            ) from None
        raise ConnectionFailed(
            f"schema registry at {shown} is failing (HTTP {status}): {registry_error_text(exc)}"
        ) from None
    except Exception as exc:  # the client raises several unrelated types
        raise ConnectionFailed(
            f"schema registry unreachable at {shown} ({type(exc).__name__}); start it "
            "(shopstream stack up) or fix SCHEMA_REGISTRY_URL"
        ) from None


@dataclass(frozen=True)
class SubjectStatus:
    subject: str
    event_type: str
    schema_id: int | None
    version: int | None
    compatibility: str | None
    outcome: str


def _call_failed(subject: str, exc: Exception) -> ShopstreamError:
    if isinstance(exc, SchemaRegistryError):
        return ShopstreamError(f"{subject}: registry error: {registry_error_text(exc)}")
    return ConnectionFailed(f"schema registry unreachable: {registry_error_text(exc)}")


def register_one(
    registry: SchemaRegistryClient, spec: EventSchema, schema_str: str | None = None
) -> SubjectStatus:
    """Set the subject's compatibility, then register ``schema_str`` (default: local).

    Raises :class:`IncompatibleSchema` (one line: the subject and why) when the
    registry refuses the schema under the subject's compatibility rule.
    """
    subject = spec.subject()
    local = schema_str or spec.schema_str
    schema = Schema(local, "AVRO")
    try:
        registry.set_compatibility(subject_name=subject, level=COMPATIBILITY)
        schema_id = registry.register_schema(subject, schema)
        registered = registry.lookup_schema(subject, schema)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 409:
            reason = _diagnose(registry, subject, local, COMPATIBILITY)
            raise IncompatibleSchema(
                f"{subject}: refused, not {COMPATIBILITY} compatible with the registered "
                f"versions: {reason + '; registry: ' if reason else ''}"
                f"{registry_error_text(exc)}"
            ) from None
        raise _call_failed(subject, exc) from None
    except Exception as exc:
        raise _call_failed(subject, exc) from None
    return SubjectStatus(
        subject, spec.name, schema_id, registered.version, COMPATIBILITY, "registered"
    )


def register_all(
    registry: SchemaRegistryClient, catalog: SchemaCatalog | None = None
) -> list[SubjectStatus]:
    return [register_one(registry, spec) for spec in (catalog or load_catalog())]


def check_one(
    registry: SchemaRegistryClient, spec: EventSchema, schema_str: str | None = None
) -> SubjectStatus:
    """Ask the registry whether the local schema (or ``schema_str``) is compatible with
    every registered version, under the subject's compatibility rule.

    Raises :class:`IncompatibleSchema` (one line: the subject and why) when it is not.
    """
    subject = spec.subject()
    local = schema_str or spec.schema_str
    schema = Schema(local, "AVRO")
    try:
        versions = registry.get_versions(subject)
    except SchemaRegistryError as exc:
        if is_not_found(exc, SUBJECT_NOT_FOUND):
            return SubjectStatus(subject, spec.name, None, None, None, "new subject")
        raise _call_failed(subject, exc) from None
    except Exception as exc:
        raise _call_failed(subject, exc) from None
    try:
        compatibility = registry.get_compatibility(subject)
    except Exception:
        compatibility = None
    try:
        # Against every version, not only the latest: a transitive rule spans them all.
        ok = registry.test_compatibility_all_versions(subject, schema)
    except Exception as exc:
        raise _call_failed(subject, exc) from None
    if not ok:
        level = compatibility or COMPATIBILITY
        reason = _diagnose(registry, subject, local, level) or (
            f"the registry reports it incompatible with its {len(versions)} version(s)"
        )
        raise IncompatibleSchema(f"{subject}: local schema is not {level} compatible: {reason}")
    return SubjectStatus(subject, spec.name, None, max(versions), compatibility, "compatible")


# -- why a schema is incompatible -------------------------------------------------------
#
# The registry answers "incompatible" without saying why (Apicurio's compatibility test
# has no verbose messages), so the reason is worked out here with Avro's resolution
# rules, applied to each registered version. Best effort: None when nothing is found.

_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_NAMED = ("record", "enum", "fixed")


def _diagnose(registry: SchemaRegistryClient, subject: str, local: str, level: str) -> str | None:
    """Which registered version the local schema clashes with, and on what."""
    try:
        new = json.loads(local)
        versions = sorted(registry.get_versions(subject), reverse=True)
        for version in versions:
            text = registry.get_version(subject, version).schema.schema_str
            old = json.loads(text or "null")
            if not level.startswith("FORWARD"):  # BACKWARD*, FULL*: new reads old
                problem = _read_problem(old, new)
                if problem:
                    return f"new readers cannot read version {version} events: {problem}"
            if level.startswith(("FORWARD", "FULL")):  # old reads new
                problem = _read_problem(new, old)
                if problem:
                    return f"version {version} readers cannot read new events: {problem}"
    except Exception:  # diagnosis must never hide the registry's answer
        return None
    return None


def _read_problem(writer: Any, reader: Any) -> str | None:
    """Why data written with ``writer`` cannot be read with ``reader`` (or None)."""
    return _Resolver().problem(writer, reader, "")


def _where(path: str) -> str:
    return f"field '{path}'" if path else "the record"


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "[" + ", ".join(_describe(member) for member in schema) + "]"
    if isinstance(schema, dict):
        if schema.get("type") in _NAMED:
            return f"{schema['type']} {schema.get('name')}"
        logical = schema.get("logicalType")
        return f"{schema.get('type')}" + (f" ({logical})" if logical else "")
    return str(schema)


def _short_name(schema: dict[str, Any]) -> str:
    return str(schema.get("name")).rsplit(".", 1)[-1]


class _Resolver:
    """Avro schema resolution (writer → reader), reporting the first mismatch."""

    def __init__(self) -> None:
        self.names: tuple[dict[str, Any], dict[str, Any]] = ({}, {})  # writer, reader
        self.seen: set[tuple[int, int]] = set()

    def _deref(self, schema: Any, side: int) -> Any:
        """Unwrap ``{"type": {...}}``, remember named types, resolve references to them."""
        while isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            schema = schema["type"]
        names = self.names[side]
        if isinstance(schema, dict) and schema.get("type") in _NAMED:
            names[_short_name(schema)] = schema
        elif isinstance(schema, str):
            schema = names.get(schema.rsplit(".", 1)[-1], schema)
        return schema

    def problem(self, writer: Any, reader: Any, path: str) -> str | None:
        writer, reader = self._deref(writer, 0), self._deref(reader, 1)
        if isinstance(writer, list):  # every branch the writer may have used
            return next(
                (found for branch in writer if (found := self.problem(branch, reader, path))),
                None,
            )
        if isinstance(reader, list):  # some branch of the reader must take it
            if any(self.problem(writer, branch, path) is None for branch in reader):
                return None
            return f"{_where(path)}: {_describe(writer)} cannot be read as {_describe(reader)}"
        kind = str(writer.get("type") if isinstance(writer, dict) else writer)
        reader_kind = str(reader.get("type") if isinstance(reader, dict) else reader)
        if kind != reader_kind and reader_kind not in _PROMOTIONS.get(kind, frozenset()):
            return f"{_where(path)}: {_describe(writer)} cannot be read as {_describe(reader)}"
        if kind != reader_kind:
            return None
        if kind == "record":
            return self._record_problem(writer, reader, path)
        if kind == "array":
            return self.problem(writer.get("items"), reader.get("items"), f"{path}[]")
        if kind == "map":
            return self.problem(writer.get("values"), reader.get("values"), f"{path}{{}}")
        if kind == "enum":
            unknown = sorted(set(writer.get("symbols", [])) - set(reader.get("symbols", [])))
            if unknown and "default" not in reader:
                return f"{_where(path)}: enum symbols {unknown} are unknown to the reader"
        if kind == "fixed" and writer.get("size") != reader.get("size"):
            return f"{_where(path)}: {_describe(writer)} cannot be read as {_describe(reader)}"
        return None

    def _record_problem(self, writer: Any, reader: Any, path: str) -> str | None:
        if _short_name(writer) != _short_name(reader):
            return f"{_where(path)}: {_describe(writer)} cannot be read as {_describe(reader)}"
        if (id(writer), id(reader)) in self.seen:  # recursive types
            return None
        self.seen.add((id(writer), id(reader)))
        written = {field["name"]: field for field in writer.get("fields", [])}
        for field in reader.get("fields", []):
            name = f"{path}.{field['name']}" if path else field["name"]
            source = written.get(field["name"]) or next(
                (written[alias] for alias in field.get("aliases", []) if alias in written), None
            )
            if source is None:
                if "default" not in field:
                    return f"field '{name}' has no default and is missing from the writer schema"
                continue
            found = self.problem(source["type"], field["type"], name)
            if found:
                return found
        return None
