"""Registry look-ups for inspection: subjects, versions, ids, and id → subject/version.

Subjects follow TopicRecordNameStrategy (``<topic>-<namespace>.<Record>``). A message
only carries its schema id; :class:`SubjectResolver` asks the registry which subject
versions hold that id (once per id) and picks the one named after the topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import DLQ_SUFFIX, SchemaCatalog, load_catalog
from shopstream.errors import ConnectionFailed, ShopstreamError, UsageError
from shopstream.serde import registry_error_text

NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class SubjectVersion:
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    schema_id: int


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    subject: str
    compatibility: str | None
    versions: tuple[VersionInfo, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "compatibility": self.compatibility,
            "versions": [{"version": v.version, "id": v.schema_id} for v in self.versions],
        }


@dataclass(frozen=True, slots=True)
class SchemaVersionDetail:
    subject: str
    version: int
    schema_id: int
    schema_type: str
    schema: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
            "type": self.schema_type,
            "schema": self.schema,
        }


def registry_failure(exc: Exception, what: str) -> ShopstreamError:
    """A registry error as a one-line ShopstreamError (ConnectionFailed if unreachable)."""
    if isinstance(exc, SchemaRegistryError):
        return ShopstreamError(f"{what}: {registry_error_text(exc)}")
    return ConnectionFailed(f"schema registry unreachable ({what}): {registry_error_text(exc)}")


def is_not_found(exc: Exception) -> bool:
    return isinstance(exc, SchemaRegistryError) and exc.http_status_code == NOT_FOUND


class RegistryBrowser:
    """Read-only views of the registry's subjects."""

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._registry = registry
        self._global_compatibility: str | None = None

    def subjects(self) -> list[SubjectInfo]:
        try:
            names = sorted(self._registry.get_subjects())
        except Exception as exc:
            raise registry_failure(exc, "listing subjects") from None
        return [self.subject(name) for name in names]

    def subject(self, subject: str) -> SubjectInfo:
        versions = self._versions(subject)
        infos = tuple(VersionInfo(v, self._version(subject, v).schema_id) for v in versions)
        return SubjectInfo(subject, self.compatibility(subject), infos)

    def compatibility(self, subject: str) -> str | None:
        """The subject's compatibility level, else the registry's global level."""
        try:
            return str(self._registry.get_compatibility(subject))
        except Exception as exc:
            if not is_not_found(exc):
                raise registry_failure(exc, f"compatibility of {subject}") from None
        return self._global_level()

    def _global_level(self) -> str | None:
        if self._global_compatibility is None:
            try:
                self._global_compatibility = str(self._registry.get_compatibility())
            except Exception:
                return None
        return self._global_compatibility

    def schema_version(self, subject: str, version: int | None = None) -> SchemaVersionDetail:
        """One version of ``subject`` (default: the latest) with its parsed schema."""
        versions = self._versions(subject)
        if version is not None and version not in versions:
            shown = ", ".join(str(v) for v in versions)
            raise UsageError(f"subject {subject!r} has no version {version} (versions: {shown})")
        registered = self._version(subject, versions[-1] if version is None else version)
        text = registered.schema.schema_str
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return SchemaVersionDetail(
            subject=registered.subject,
            version=int(registered.version),
            schema_id=int(registered.schema_id),
            schema_type=registered.schema.schema_type or "AVRO",
            schema=parsed,
        )

    def _versions(self, subject: str) -> list[int]:
        try:
            versions = sorted(int(v) for v in self._registry.get_versions(subject))
        except Exception as exc:
            if is_not_found(exc):
                raise UsageError(
                    f"unknown subject {subject!r} (list them with 'shopstream inspect schemas')"
                ) from None
            raise registry_failure(exc, f"versions of {subject}") from None
        if not versions:
            raise UsageError(f"subject {subject!r} has no versions")
        return versions

    def _version(self, subject: str, version: int) -> Any:
        try:
            return self._registry.get_version(subject, version)
        except Exception as exc:
            raise registry_failure(exc, f"{subject} version {version}") from None


def strategy_subject(topic: str, full_name: str) -> str:
    """TopicRecordNameStrategy: ``<topic>-<namespace>.<Record>``."""
    return f"{topic}-{full_name}"


class SubjectResolver:
    """schema id (+ topic, record) → the subject and version holding it, cached per id."""

    def __init__(
        self, registry: SchemaRegistryClient, catalog: SchemaCatalog | None = None
    ) -> None:
        self._registry = registry
        self._catalog = catalog or load_catalog()
        self._by_id: dict[int, tuple[SubjectVersion, ...]] = {}

    def resolve(self, schema_id: int, topic: str, full_name: str) -> tuple[str, int | None]:
        """The subject for a message of ``topic``, and the version of ``schema_id`` in it.

        Prefers ``<topic>-<record>``, then (for a ``.dlq`` topic) the original topic's
        subject, then the record's subject in the local catalog, then any subject of
        this record holding the id. When the registry knows no subject for the id the
        strategy's subject is returned without a version.
        """
        holders = self._holders(schema_id)
        wanted = self._candidates(topic, full_name)
        for subject in wanted:
            for holder in holders:
                if holder.subject == subject:
                    return holder.subject, holder.version
        for holder in holders:
            if holder.subject.endswith(f"-{full_name}"):
                return holder.subject, holder.version
        return wanted[0], None

    def _candidates(self, topic: str, full_name: str) -> list[str]:
        wanted = [strategy_subject(topic, full_name)]
        if topic.endswith(DLQ_SUFFIX):
            wanted.append(strategy_subject(topic.removesuffix(DLQ_SUFFIX), full_name))
        try:
            spec = self._catalog.get(full_name)
        except KeyError:
            return wanted
        if spec.full_name == full_name:
            wanted.append(spec.subject())
        return wanted

    def _holders(self, schema_id: int) -> tuple[SubjectVersion, ...]:
        known = self._by_id.get(schema_id)
        if known is None:
            known = self._fetch(schema_id)
            self._by_id[schema_id] = known
        return known

    def _fetch(self, schema_id: int) -> tuple[SubjectVersion, ...]:
        try:
            pairs = self._registry.get_schema_versions(schema_id)
        except Exception as exc:
            if is_not_found(exc):
                return ()
            raise registry_failure(exc, f"subjects of schema id {schema_id}") from None
        return tuple(
            SubjectVersion(str(p.subject), p.version) for p in pairs if p.version is not None
        )
