"""Schema administration against the registry: register, set compatibility, check.

Subjects (TopicRecordNameStrategy) are kept at BACKWARD_TRANSITIVE compatibility: a
consumer using a new version can read the data of every older version. With the
project's rule for evolving (only add optional fields with defaults) old consumers
read new events too.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import EventSchema, SchemaCatalog, load_catalog
from shopstream.errors import ConnectionFailed, ShopstreamError
from shopstream.serde import registry_error_text

COMPATIBILITY = "BACKWARD_TRANSITIVE"


class IncompatibleSchema(ShopstreamError):
    """A local schema that the registry would refuse under its compatibility rule."""


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
        if exc.http_status_code == 409:
            return IncompatibleSchema(
                f"{subject}: incompatible with the registered versions: {registry_error_text(exc)}"
            )
        return ShopstreamError(f"{subject}: registry error: {registry_error_text(exc)}")
    return ConnectionFailed(f"schema registry unreachable: {registry_error_text(exc)}")


def register_one(
    registry: SchemaRegistryClient, spec: EventSchema, schema_str: str | None = None
) -> SubjectStatus:
    """Set the subject's compatibility, then register ``schema_str`` (default: local)."""
    subject = spec.subject()
    try:
        registry.set_compatibility(subject_name=subject, level=COMPATIBILITY)
        schema = Schema(schema_str or spec.schema_str, "AVRO")
        schema_id = registry.register_schema(subject, schema)
        registered = registry.lookup_schema(subject, schema)
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
    """Ask the registry whether the local schema is compatible with what is registered."""
    subject = spec.subject()
    schema = Schema(schema_str or spec.schema_str, "AVRO")
    try:
        versions = registry.get_versions(subject)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return SubjectStatus(subject, spec.name, None, None, None, "new subject")
        raise _call_failed(subject, exc) from None
    except Exception as exc:
        raise _call_failed(subject, exc) from None
    try:
        compatibility = registry.get_compatibility(subject)
    except Exception:
        compatibility = None
    try:
        ok = registry.test_compatibility(subject, schema)
    except Exception as exc:
        raise _call_failed(subject, exc) from None
    if not ok:
        raise IncompatibleSchema(
            f"{subject}: local schema is not {compatibility or COMPATIBILITY} compatible "
            f"with the {len(versions)} registered version(s)"
        )
    return SubjectStatus(subject, spec.name, None, max(versions), compatibility, "compatible")


def check_all(
    registry: SchemaRegistryClient, catalog: SchemaCatalog | None = None
) -> list[SubjectStatus]:
    return [check_one(registry, spec) for spec in (catalog or load_catalog())]
