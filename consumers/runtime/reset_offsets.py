"""`shopstream consume reset-offsets GROUP --to earliest|latest`: move a group's stored
offsets to the start or the end of its topic.

The way out when a group stops because its offsets in the database no longer fit the
topic (:class:`~consumers.runtime.runner.StaleOffsets`: the topic was recreated, a broker
wiped, or retention deleted events it had not applied). ``earliest`` re-reads what
the topic still holds (events already applied are skipped by their event id);
``latest`` skips to the end. ``consume rebuild GROUP`` is the other way out: empty
the group's tables and replay everything.

Refused, with one line and nothing changed, while the Kafka consumer group has live
members. The offsets move with the same compare-and-set a batch uses, so a member
still writing without being in the group (a zombie) fails its next batch and
re-reads them.
"""

from __future__ import annotations

from enum import StrEnum

from consumers.projections import projection_for
from consumers.runtime.offset_store import OffsetStore
from consumers.runtime.rebuild import RebuildRefused, ensure_idle
from consumers.runtime.runner import with_retries
from shopstream.config import Settings
from shopstream.db.engine import check_database, make_engine
from shopstream.errors import UsageError
from shopstream.kafka.clients import check_broker
from shopstream.kafka.offsets import TopicPartitionKey, offset_bounds, topic_end_offsets


class ResetTo(StrEnum):
    earliest = "earliest"
    latest = "latest"


def reset_offsets(settings: Settings, groups: list[str], to: ResetTo | None) -> int:
    """Reset each group's offsets; the exit code of the CLI."""
    if not groups:
        raise UsageError(
            "name the group: shopstream consume reset-offsets GROUP --to earliest|latest"
        )
    if to is None:
        raise UsageError("say where to: --to earliest (re-read) or --to latest (skip)")
    projections = [projection_for(name) for name in dict.fromkeys(groups)]
    check_broker(settings)
    for projection in projections:
        ensure_idle(settings, projection.group_id, action="reset the offsets of")
    engine = make_engine(settings.database_url, settings=settings)
    try:
        check_database(engine)
        for projection in projections:
            topic = settings.topic(projection.topic)
            targets = _targets(settings, topic, to)
            store = OffsetStore(projection.group_id, topic)
            with engine.begin() as connection:
                stored = store.load(connection, list(targets))
                moves = {k: (stored[k], new) for k, new in targets.items() if stored[k] != new}
                if moves:
                    store.advance(connection, moves)
            shown = ", ".join(
                f"{t}[{p}] {old} -> {new}" for (t, p), (old, new) in sorted(moves.items())
            )
            print(
                f"offsets of {projection.group_id} set to the {to.value} of {topic}: "
                f"{shown or 'already there'}"
            )
    finally:
        engine.dispose()
    return 0


def _targets(settings: Settings, topic: str, to: ResetTo) -> dict[TopicPartitionKey, int]:
    ends = with_retries("reading end offsets", lambda: topic_end_offsets(settings, topic))
    if ends is None:
        raise RebuildRefused(
            f"topic {topic} does not exist (create it with 'shopstream topics create')"
        )
    bounds = with_retries("reading partition bounds", lambda: offset_bounds(settings, list(ends)))
    index = 0 if to is ResetTo.earliest else 1
    return {key: bound[index] for key, bound in bounds.items()}
