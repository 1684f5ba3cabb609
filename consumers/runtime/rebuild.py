"""`shopstream consume rebuild GROUP`: empty one group's tables and offsets, replay its topic.

A projection whose logic changed (or whose tables were damaged) is fixed by a
rebuild. For each group named:

1. refuse, with one line and a non-zero exit, while the group has live members: the
   Kafka consumer group (``settings.kafka_group(group)``) must be Empty or Dead, as
   ``AdminClient.describe_consumer_groups`` reports it. A daemon killed without
   leaving stays a member until its session times out (45 s by default);
2. in one database transaction, delete every row of the group's own tables
   (``Projection.tables``, children first) and the group's rows in
   ``consumer_offsets`` and ``processed_events``. No other group's rows are touched;
3. replay the topic from the beginning with the ordinary runtime (a
   :class:`~consumers.runtime.daemon.ConsumerDaemon` of that one group, ``until_caught_up``),
   so the rebuilt tables are exactly what the daemon itself would have written;
4. check that the stored offsets reached the end offsets taken before the replay
   (an interrupted replay exits 1: run the rebuild again).

A daemon of the group started while a rebuild runs is not a corruption risk: the
runtime's compare-and-set offsets make the two share the partitions as any two
members do. Events refused again during the replay are dead-lettered again, so a
rebuild adds a second copy of those dead letters to ``<topic>.dlq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from consumers.projections import projection_for
from consumers.projections.base import Projection
from consumers.runtime.daemon import ConsumerDaemon, DaemonOptions
from consumers.runtime.offset_store import OffsetStore, ProcessedEvents
from consumers.runtime.runner import RuntimeOptions
from shopstream.config import Settings
from shopstream.db.engine import (
    check_database,
    describe_db_error,
    lift_statement_timeout,
    make_engine,
)
from shopstream.errors import ConnectionFailed, ShopstreamError, UsageError
from shopstream.kafka.clients import METADATA_TIMEOUT_S, check_broker, make_admin
from shopstream.kafka.errors import describe_kafka_error
from shopstream.kafka.offsets import TopicPartitionKey, topic_end_offsets
from shopstream.logs import get_logger
from shopstream.registry.admin import check_registry

log = get_logger("shopstream.rebuild")

IDLE_STATES = frozenset({ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD})


class RebuildRefused(ShopstreamError):
    """The group is running (or the rebuild cannot start): nothing was changed."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class GroupActivity:
    """What the broker says about a consumer group."""

    kafka_group: str
    state: str
    members: int

    @property
    def idle(self) -> bool:
        return self.members == 0 and self.state in {s.name for s in IDLE_STATES}


def rebuild_groups(settings: Settings, groups: Sequence[str], runtime: RuntimeOptions) -> int:
    """Rebuild each group in turn; the exit code of the CLI."""
    if not groups:
        raise UsageError("name the group to rebuild: shopstream consume rebuild GROUP")
    projections = [projection_for(name) for name in dict.fromkeys(groups)]
    check_broker(settings)
    check_registry(settings)
    for projection in projections:
        ensure_idle(settings, projection.group_id)
    engine = make_engine(settings.database_url, settings=settings)
    try:
        check_database(engine)
        for projection in projections:
            code = rebuild_one(settings, engine, projection, runtime)
            if code != 0:
                return code
    finally:
        engine.dispose()
    return 0


def rebuild_one(
    settings: Settings, engine: Engine, projection: Projection, runtime: RuntimeOptions
) -> int:
    group_id = projection.group_id
    ensure_idle(settings, group_id)
    topic = settings.topic(projection.topic)
    ends = _existing_topic_ends(settings, topic)
    with engine.connect() as connection:
        OffsetStore(group_id, topic).ensure_sole_topic(connection)
    reset_group(engine, projection, topic)
    log.info("group reset; replaying", group=group_id, topic=settings.topic(projection.topic))
    daemon = ConsumerDaemon(
        settings,
        [group_id],
        replace(runtime, until_caught_up=True),
        DaemonOptions(http_port=None),
    )
    code = daemon.run()
    if code != 0:
        return code
    behind = partitions_behind(engine, OffsetStore(group_id, topic), ends)
    if behind:
        print(f"rebuild of {group_id} stopped before catching up ({behind}); run it again")
        return 1
    print(
        f"rebuilt {group_id} from the start of {settings.topic(projection.topic)}: "
        f"{describe_rows(engine, projection)}"
    )
    return 0


# -- steps ------------------------------------------------------------------------------


def group_activity(settings: Settings, group_id: str) -> GroupActivity:
    """State and member count of the group's Kafka consumer group."""
    kafka_group = settings.kafka_group(group_id)
    admin = make_admin(settings)
    futures = admin.describe_consumer_groups([kafka_group], request_timeout=METADATA_TIMEOUT_S)
    try:
        description = futures[kafka_group].result(timeout=METADATA_TIMEOUT_S * 2)
    except KafkaException as exc:
        if _is_group_not_found(exc):
            return GroupActivity(kafka_group, ConsumerGroupState.DEAD.name, 0)
        raise ConnectionFailed(
            f"cannot describe consumer group {kafka_group}: {describe_kafka_error(exc)}"
        ) from None
    state = description.state
    name = state.name if isinstance(state, ConsumerGroupState) else str(state)
    return GroupActivity(kafka_group, name, len(description.members or []))


def _is_group_not_found(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    code = getattr(KafkaError, "GROUP_ID_NOT_FOUND", None)
    return isinstance(error, KafkaError) and code is not None and error.code() == code


def ensure_idle(settings: Settings, group_id: str, action: str = "rebuild") -> None:
    """Raise RebuildRefused unless the group has no live member."""
    activity = group_activity(settings, group_id)
    if activity.idle:
        return
    raise RebuildRefused(
        f"refusing to {action} {group_id}: consumer group {activity.kafka_group} has "
        f"{activity.members} live member(s) (state {activity.state}); stop its "
        "'shopstream consume' daemons first (a killed daemon leaves after its session timeout)"
    )


def _existing_topic_ends(settings: Settings, topic: str) -> dict[TopicPartitionKey, int]:
    """The end offsets of every partition of ``topic``, which must exist (one-line errors)."""
    try:
        ends = topic_end_offsets(settings, topic)
    except KafkaException as exc:
        raise ConnectionFailed(
            f"cannot read the end offsets of {topic}: {describe_kafka_error(exc)}"
        ) from None
    if ends is None:
        raise RebuildRefused(
            f"topic {topic} does not exist (create it with 'shopstream topics create')"
        )
    return ends


def reset_group(engine: Engine, projection: Projection, topic: str) -> None:
    """Empty the group's offsets and processed ids of ``topic`` (the real name, prefix
    included) and its tables, in one transaction.

    Offsets first: that fences a member still writing (a zombie past its session). Its
    batch's transaction starts with a compare-and-set of those very rows, so on
    PostgreSQL either it committed before (the delete waits for its row locks, and
    the statements after the delete see its rows, which go too), or its
    compare-and-set comes later and finds no row: it fails and rolls back. Deleting
    the tables first would miss the rows of a transaction that commits in between.
    """
    try:
        with engine.begin() as connection:
            lift_statement_timeout(connection)  # a large group's tables take a while
            OffsetStore(projection.group_id, topic).reset(connection)
            ProcessedEvents(projection.group_id, topic).reset(connection)
            for table in projection.tables:
                connection.execute(table.delete())
    except SQLAlchemyError as exc:
        raise ShopstreamError(
            f"cannot reset {projection.group_id}: {describe_db_error(exc)} "
            "(is the database migrated? 'shopstream db upgrade')"
        ) from None


def partitions_behind(
    engine: Engine, store: OffsetStore, ends: dict[TopicPartitionKey, int]
) -> str:
    """``topic[p] at X of Y, ...`` for partitions whose stored offset is below ``ends``."""
    with engine.connect() as connection:
        stored = store.load_all(connection)
    late = [
        f"{topic}[{partition}] at {stored.get((topic, partition), 0)} of {end}"
        for (topic, partition), end in sorted(ends.items())
        if stored.get((topic, partition), 0) < end
    ]
    return ", ".join(late)


def describe_rows(engine: Engine, projection: Projection) -> str:
    with engine.connect() as connection:
        counts = [
            f"{table.name} {connection.scalar(select(func.count()).select_from(table))}"
            for table in reversed(projection.tables)
        ]
    return ", ".join(counts) + " rows"
