"""Everything one ``SHOPSTREAM_TOPIC_PREFIX`` owns on a shared cluster, and removing it.

The demo and the benchmarks each run under a fresh prefix; when they are done they
delete their topics and registry subjects so a cluster used for many runs does not
fill up with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress

from schemas import load_catalog
from shopstream.config import Settings
from shopstream.kafka.clients import make_admin
from shopstream.kafka.topics import project_topics
from shopstream.serde import make_registry_client

TIMEOUT_S = 30


def delete_prefixed_data(settings: Settings) -> None:
    """Delete the topics and subjects under ``settings.shopstream_topic_prefix``
    (best effort: what is already gone, or cannot be deleted, is skipped)."""
    prefix = settings.shopstream_topic_prefix
    if not prefix:
        raise ValueError("refusing to delete the unprefixed (shared) topics and subjects")
    delete_topics_and_subjects(
        settings,
        [spec.name for spec in project_topics(prefix=prefix)],
        [spec.subject() for spec in load_catalog().with_topic_prefix(prefix)],
    )


def delete_topics_and_subjects(
    settings: Settings, topics: Sequence[str], subjects: Sequence[str]
) -> None:
    """Delete ``topics`` and the registry's ``subjects`` (soft, then permanently), best
    effort: what is already gone, or cannot be deleted, is skipped."""
    if topics:
        admin = make_admin(settings)
        for future in admin.delete_topics(list(topics), operation_timeout=TIMEOUT_S).values():
            with suppress(Exception):
                future.result(TIMEOUT_S)
    registry = make_registry_client(settings.registry_config())
    for subject in subjects:
        with suppress(Exception):
            registry.delete_subject(subject, permanent=False)
            registry.delete_subject(subject, permanent=True)
