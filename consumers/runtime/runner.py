"""The consumer runtime every group shares: poll, decode, apply, commit — effectively once.

One :class:`GroupRunner` drives one consumer group's projection:

1. ``consume()`` a batch (``batch_size`` messages or ``batch_wait_s``, whichever first);
2. decode each message (undecodable → dead letter);
3. in ONE database transaction: compare-and-set the group's next offsets
   (:class:`~consumers.runtime.offset_store.OffsetStore`), drop events whose ``event_id`` was
   already processed, let the projection apply the rest (events the database refuses are
   isolated with savepoints, :mod:`consumers.runtime.db_refusals`), record their ids, and
   write (and confirm, within a bounded wait) the dead letters — then commit;
4. after the database commit, commit the same offsets to Kafka, so standard tools
   show the group's lag. Kafka's offsets are never read back: on assignment the
   runner resumes from the offsets in the database (earliest when none).

On PostgreSQL, steps 1-2 of the next batch overlap step 3 of the current one: the
transaction runs on a single writer thread while this thread fetches and decodes the
next batch (the driver waits for the server without holding the GIL). At most one
batch is in flight. The next batch's compare-and-set starts from the offsets the batch
in flight will commit; if that one fails, the batch in hand is dropped and every
partition is re-read from the offsets committed in the database. A rebalance, a stop,
or any wait first settles the batch in flight, so revoked partitions are committed
(or not) before they are given up.

On SQLite the transaction runs on the polling thread itself (same steps, nothing
overlaps). SQLite works inside this process, so a writer thread only adds GIL
hand-offs, and it holds the database's single write lock while waiting for them,
which stalls every other member of the group writing to the same file. Measured with
two members on SQLite: 26-34k events/s with the writer thread, 40-45k without; with
one member the two are about equal (``RuntimeOptions.background_writes``).

A database that fails is retried with backoff while the partitions are paused and
the consumer keeps polling (it stays in the group); nothing is skipped. So is a batch
whose dead letters the broker did not confirm in time. A broker that
goes away is retried by librdkafka and reported in the logs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from consumers.projections.base import Envelope, Projection, Rejection
from consumers.runtime import db_refusals
from consumers.runtime.db_refusals import RefusalIsolator, RefusedEvent
from consumers.runtime.dlq_writer import (
    DB_CODE,
    DB_MESSAGE,
    DeadLetter,
    DeadLetterUnavailable,
    DeadLetterWriter,
)
from consumers.runtime.metrics import ConsumerMetrics
from consumers.runtime.offset_store import OffsetConflict, OffsetStore, ProcessedEvents
from shopstream.config import Settings
from shopstream.db.engine import describe_db_error
from shopstream.errors import ConnectionFailed, ShopstreamError
from shopstream.events import EventValidationError
from shopstream.kafka.clients import make_consumer
from shopstream.kafka.errors import describe_kafka_error, is_transient_kafka_error
from shopstream.kafka.offsets import (
    TopicPartitionKey,
    coordinates,
    end_offsets,
    offset_bounds,
    topic_end_offsets,
)
from shopstream.logs import get_logger
from shopstream.serde import DecodeError, EventDeserializer, make_registry_client

log = get_logger("shopstream.consumer")

_T = TypeVar("_T")


@dataclass(frozen=True)
class RuntimeOptions:
    batch_size: int = 2000
    batch_wait_s: float = 0.2
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    until_caught_up: bool = False
    session_timeout_ms: int = 10_000
    """How soon the group notices a member that died without leaving (kill -9):
    its partitions move to the others after this long (librdkafka's default is 45 s)."""
    stall_after_s: float = 60.0
    """/healthz fails when the poll loop has not advanced for this long."""
    background_writes: bool | None = None
    """Run each batch's transaction on a writer thread while the next batch is polled
    and decoded. None: on PostgreSQL yes, on SQLite no (see the module's docstring)."""
    consumer_overrides: dict[str, Any] = field(default_factory=dict)


def is_transient_db_error(exc: BaseException) -> bool:
    """Errors that mean 'the database is unavailable right now', worth retrying."""
    if isinstance(exc, OperationalError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


@dataclass
class _Decoded:
    envelopes: list[Envelope]
    letters: list[DeadLetter]
    moves: dict[TopicPartitionKey, tuple[int, int]]
    source: Sequence[Message]

    @property
    def messages(self) -> int:
        return len(self.source)


@dataclass(frozen=True)
class _Outcome:
    """What one batch's transaction did (returned by the writer)."""

    applied: list[Envelope]
    rejected: list[Rejection]
    duplicates: int
    committed_at: float


@dataclass(frozen=True)
class _InFlight:
    """The batch whose transaction the writer runs (or, on the caller's thread, ran)."""

    decoded: _Decoded
    started: float
    future: Future[_Outcome]


class GroupRunner:
    """Runs one projection's consumer group until stopped (or caught up)."""

    def __init__(
        self,
        settings: Settings,
        projection: Projection,
        engine: Engine,
        metrics: ConsumerMetrics,
        options: RuntimeOptions,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.projection = projection
        self.group_id = projection.group_id
        self.topic = settings.topic(projection.topic)
        self._engine = engine
        self._metrics = metrics
        self._options = options
        self._stop = stop
        self._offsets = OffsetStore(self.group_id, self.topic)
        self._processed = ProcessedEvents(self.group_id, self.topic)
        self._isolator = RefusalIsolator(projection.apply, projection.independent_keys)
        self._dlq = DeadLetterWriter(settings, self.group_id)
        self._deserializer = EventDeserializer(make_registry_client(settings.registry_config()))
        self._consumer: Consumer | None = None
        self._log = log.bind(group=self.group_id)
        # partition state, only touched by the runner's thread (callbacks run inside consume)
        self._expected: dict[TopicPartitionKey, int] = {}
        """Next offset per owned partition as committed in the database."""
        self._next: dict[TopicPartitionKey, int] = {}
        """Next offset to read per owned partition: past the batch in flight, if any."""
        self._in_flight: _InFlight | None = None
        self._writer: Executor | None = None
        self._rewind_needed = False
        self._backoff = options.backoff_initial_s
        self._pending: set[TopicPartitionKey] = set()
        self._end_at_start: dict[TopicPartitionKey, int] = {}
        self._group_end_at_start: dict[TopicPartitionKey, int] = {}
        self._next_group_check = 0.0
        self._ever_assigned = False
        self._commit_listeners: list[Callable[[list[Envelope], float], None]] = []
        self.last_progress = time.monotonic()
        self.db_ok = True
        self.events_applied = 0
        self.events_dead_lettered = 0
        self.caught_up = False

    # -- lifecycle --------------------------------------------------------------

    def add_commit_listener(self, listener: Callable[[list[Envelope], float], None]) -> None:
        """Call ``listener(applied_envelopes, commit_wall_time)`` after each DB commit."""
        self._commit_listeners.append(listener)

    def start(self, consumer: Consumer | None = None) -> None:
        """Subscribe (with ``consumer``, when given: the tests' scripted consumer)."""
        overrides = {
            "client.id": f"shopstream-{self.group_id}",
            "session.timeout.ms": self._options.session_timeout_ms,
            "heartbeat.interval.ms": max(500, self._options.session_timeout_ms // 5),
            # a position outside the partition is reported (see _out_of_range), never
            # silently moved to the start or the end
            "auto.offset.reset": "error",
            **self._options.consumer_overrides,
        }
        self._consumer = consumer or make_consumer(
            self.settings, self.settings.kafka_group(self.group_id), **overrides
        )
        self._consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._dlq.start()
        self._writer = self._make_writer()
        self._log.info("group started", topic=self.topic)

    def _make_writer(self) -> Executor:
        background = self._options.background_writes
        if background is None:
            background = self._engine.dialect.name != "sqlite"
        if background:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"db-{self.group_id}")
        return CallerThreadExecutor()

    def close(self) -> None:
        """Settle the batch in flight, leave the group (revoking partitions), flush the
        dead-letter producer."""
        with contextlib.suppress(Exception):
            self._settle(recover=False)
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                self._log.warning("consumer close failed", error=describe_kafka_error(exc))
            self._consumer = None
        self._dlq.close()
        self._log.info(
            "group stopped", applied=self.events_applied, dead_lettered=self.events_dead_lettered
        )

    def run(self) -> None:
        """Poll and apply until the stop event is set (or caught up, if asked)."""
        try:
            self._run()
        finally:
            self._settle(recover=False)

    def _run(self) -> None:
        consumer = self._require_consumer()
        while not self._stop.is_set():
            self.last_progress = time.monotonic()
            if self._rewind_needed:
                self._rewind()
            if self._pending:
                self._settle()
                self._sync_pending()
            messages = consumer.consume(
                num_messages=self._options.batch_size, timeout=self._options.batch_wait_s
            )
            if self._rewind_needed:
                continue  # a batch failed in a callback of this consume: re-read from the DB
            batch = self._accept(messages)
            if batch:
                self._process(batch)
            elif self._in_flight is not None:
                self._settle()  # nothing new: account for the batch in flight now
            if self._options.until_caught_up and self._is_caught_up(self._next):
                self._settle()
                if self._is_caught_up(self._expected) and self._group_caught_up():
                    self.caught_up = True
                    self._log.info("caught up", applied=self.events_applied)
                    return

    # -- rebalance callbacks -------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle(recover=False)
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self._ever_assigned = True
        try:
            stored = self._stored_positions(keys)
        except Exception as exc:
            if not (is_transient_db_error(exc) or is_transient_kafka_error(exc)):
                raise
            self._log.warning(
                "offsets cannot be read at assignment; partitions paused",
                error=_describe_transient(exc),
            )
            assign_unpaused(consumer, dict.fromkeys(keys, OFFSET_INVALID))
            consumer.pause(partitions)
            self._pending.update(keys)
            return
        assign_unpaused(consumer, {key: _position(offset) for key, offset in stored.items()})
        self._expected.update(stored)
        self._next.update(stored)
        self._log.info("partitions assigned", partitions=_describe(stored))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle(recover=False)  # finish and commit the batch in hand
        self._forget(partitions)
        consumer.incremental_unassign(partitions)
        self._log.info("partitions revoked", partitions=[tp.partition for tp in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle(recover=False)  # its compare-and-set decides whether it still counts
        self._forget(partitions)
        consumer.incremental_unassign(partitions)
        self._log.warning("partitions lost", partitions=[tp.partition for tp in partitions])

    def _forget(self, partitions: list[TopicPartition]) -> None:
        self.projection.discard()  # another member may write these partitions' rows now
        self._dlq.forget_partitions({(tp.topic, tp.partition) for tp in partitions})
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._expected.pop(key, None)
            self._next.pop(key, None)
            self._pending.discard(key)
            self._end_at_start.pop(key, None)

    def _sync_pending(self) -> None:
        """Partitions assigned while the database was down: load offsets, seek, resume."""
        consumer = self._require_consumer()
        keys = sorted(self._pending)
        try:
            stored = self._stored_positions(keys)
        except Exception as exc:
            if is_transient_db_error(exc):
                self.db_ok = False
                return
            if is_transient_kafka_error(exc):
                return
            raise
        self.db_ok = True
        # Assigned again at their offsets, not seeked: a partition assigned without an
        # offset and paused at once never starts fetching, and a seek on it fails
        # (_STATE, "Erroneous state") on every loop.
        try:
            consumer.incremental_unassign([TopicPartition(t, p) for t, p in keys])
            assign_unpaused(consumer, {key: _position(offset) for key, offset in stored.items()})
        except KafkaException as exc:
            self._log.warning("paused partitions not resumed yet", error=describe_kafka_error(exc))
            return
        self._pending.difference_update(keys)
        self._expected.update(stored)
        self._next.update(stored)
        self._log.info("paused partitions resumed", partitions=_describe(stored))

    def _stored_positions(self, keys: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """The next offsets in the database for newly owned partitions, checked against
        each partition's bounds in Kafka (read after them: an end only grows).

        Raises :class:`StaleOffsets` when one no longer fits its partition, instead of
        letting the consumer silently jump to the start or the end.
        """
        with self._engine.begin() as connection:
            stored = self._offsets.load(connection, keys)
        bounds = with_retries(
            "reading partition bounds", lambda: offset_bounds(self.settings, keys), self._stop
        )
        stale = {
            key: (offset, *bounds[key])
            for key, offset in stored.items()
            if offset > bounds[key][1] or 0 < offset < bounds[key][0]
        }
        if stale:
            raise StaleOffsets(self.group_id, stale)
        return stored

    # -- one batch --------------------------------------------------------------

    def _accept(self, messages: list[Message]) -> list[Message]:
        accepted = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._AUTO_OFFSET_RESET:
                    self._out_of_range(message)
                    continue
                self._on_kafka_error(error)
                continue
            if self._still_expected(message):
                accepted.append(message)
        return accepted

    def _out_of_range(self, message: Message) -> None:
        """The position is outside the partition (the consumer never resets it on its
        own: ``auto.offset.reset=error``). A partition the group never read starts at
        its first offset; any other stops the group: retention deleted events it had
        not applied, or the topic was recreated."""
        consumer = self._require_consumer()
        topic, partition = message.topic(), message.partition()
        if topic is None or partition is None:
            raise KafkaException(message.error())
        key = (topic, partition)
        offset = self._next.get(key)
        if offset is None:
            return  # no longer ours
        if offset == 0:
            try:
                consumer.seek(TopicPartition(topic, partition, OFFSET_BEGINNING))
            except KafkaException:
                self._pending.add(key)  # not fetchable yet: _sync_pending seeks it later
            return
        low, high = with_retries(
            "reading partition bounds", lambda: offset_bounds(self.settings, [key]), self._stop
        )[key]
        raise StaleOffsets(self.group_id, {key: (offset, low, high)})

    def _on_kafka_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaException(error)
        self._log.warning("kafka unavailable, retrying", error=f"{error.name()}: {error.str()}")

    def _decode(self, batch: Sequence[Message]) -> _Decoded:
        envelopes: list[Envelope] = []
        letters: list[DeadLetter] = []
        last: dict[TopicPartitionKey, int] = {}
        decode = self._deserializer.decode
        for message in batch:
            topic, partition, offset = coordinates(message)
            last[(topic, partition)] = offset
            try:
                decoded = decode(message.value())
            except DecodeError as exc:
                letters.append(_letter(message, exc.reason, exc.message))
                continue
            except EventValidationError as exc:
                letters.append(_letter(message, "invalid-event", exc.message))
                continue
            envelopes.append(Envelope(decoded.event, topic, partition, offset))
        moves = {key: (self._next[key], offset + 1) for key, offset in last.items()}
        return _Decoded(envelopes, letters, moves, batch)

    def _decode_with_retry(self, batch: Sequence[Message]) -> _Decoded | None:
        """Decode; while the registry is unreachable, wait (staying in the group) and retry."""
        backoff = self._options.backoff_initial_s
        while not self._stop.is_set():
            try:
                return self._decode(batch)
            except ConnectionFailed as exc:
                if not self._settle():
                    return None  # the batch in flight failed: everything is re-read
                self._wait_and_rewind("schema registry unavailable", exc.message, backoff)
                backoff = min(backoff * 2, self._options.backoff_max_s)
                batch = [m for m in batch if self._still_expected(m)]
        return None

    def _still_expected(self, message: Message) -> bool:
        """Ours and not read yet (else: revoked, or already past it)."""
        topic, partition, offset = coordinates(message)
        expected = self._next.get((topic, partition))
        return expected is not None and offset >= expected

    def _process(self, batch: list[Message]) -> None:
        """Decode ``batch`` here, then hand it to the writer once the one before is done."""
        started = time.perf_counter()
        decoded = self._decode_with_retry(batch)
        if decoded is None or decoded.messages == 0:
            return
        if not self._settle():
            return  # the batch before failed: positions were rewound, this one is re-read
        writer = self._writer
        if writer is None:
            raise RuntimeError("GroupRunner.start() was not called")
        future = writer.submit(self._apply_in_transaction, decoded)
        self._in_flight = _InFlight(decoded, started, future)
        for key, (_, new) in decoded.moves.items():
            self._next[key] = new

    def _settle(self, recover: bool = True) -> bool:
        """Wait for the batch in flight and account for it; True when it committed.

        When its transaction failed, every partition is re-read from the offsets
        committed in the database: here (``recover``) after the backoff, or on the
        next loop when called from a rebalance callback or on the way out.
        """
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return True
        try:
            outcome = flight.future.result()
        except OffsetConflict as exc:
            self._metrics.conflicts.labels(self.group_id).inc()
            self._log.warning("offsets moved under us; re-reading them", detail=str(exc))
            self._after_failure(recover, lambda: self._resync(list(flight.decoded.moves)))
            return False
        except DeadLetterUnavailable as exc:
            self._retry_later(recover, "dead-letter topic unavailable", exc.message)
            return False
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            self.db_ok = False
            self._metrics.db_retries.labels(self.group_id).inc()
            self._retry_later(recover, "database unavailable", describe_db_error(exc))
            return False
        self.db_ok = True
        self._backoff = self._options.backoff_initial_s
        self._after_commit(flight.decoded, outcome, time.perf_counter() - flight.started)
        return True

    def _retry_later(self, recover: bool, what: str, error: str) -> None:
        """The batch was rolled back for a passing reason: pause, back off, re-read it."""
        backoff = self._backoff
        self._backoff = min(backoff * 2, self._options.backoff_max_s)
        self._after_failure(recover, lambda: self._wait_and_rewind(what, error, backoff))

    def _after_failure(self, recover: bool, recovery: Callable[[], None]) -> None:
        """Re-read every partition from the committed offsets (:meth:`_rewind` on the next
        loop; until then nothing fetched is accepted). ``recover``: wait it out here first."""
        self.projection.discard()  # rolled back, or someone else moved the offsets
        self._rewind_needed = True
        if recover:
            recovery()

    def _rewind(self) -> None:
        """Seek every owned partition back to the next offset committed in the database."""
        self._rewind_needed = False
        consumer = self._require_consumer()
        self._next = dict(self._expected)
        for (topic, partition), offset in self._expected.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException:
                self._pending.add((topic, partition))

    def _apply_in_transaction(self, decoded: _Decoded) -> _Outcome:
        """One batch, one transaction (on the writer: its thread, or this one on SQLite).

        The events the database refuses are isolated by :class:`RefusalIsolator` (with
        savepoints) and dead-lettered like the projection's own refusals: their ids stay
        claimed, as dead-lettered, so a re-sent copy is skipped, not dead-lettered again.
        """
        self.projection.begin()
        with self._engine.begin() as connection:
            self._offsets.advance(connection, decoded.moves)
            fresh = self._claim_fresh(connection, decoded.envelopes)
            outcome = self._isolator.apply_batch(connection, fresh)
            refused = [
                Rejection(r.envelope, db_refusals.REASON, str(r.refusal)) for r in outcome.refused
            ]
            rejections = outcome.rejections + refused
            rejected_ids = {r.envelope.event.event_id for r in rejections}
            if rejected_ids:
                self._processed.mark_dead_lettered(connection, rejected_ids)
            letters = decoded.letters + _rejected_letters(
                decoded.source, outcome.rejections, outcome.refused
            )
            self._dlq.write_all(letters)
        self._dlq.forget(letters)
        applied = [env for env in fresh if env.event.event_id not in rejected_ids]
        return _Outcome(applied, rejections, len(decoded.envelopes) - len(fresh), time.time())

    def _claim_fresh(self, connection: Connection, envelopes: list[Envelope]) -> list[Envelope]:
        """The envelopes whose event id was never processed (first copy in the batch)."""
        new_ids = self._processed.claim(connection, (env.event.event_id for env in envelopes))
        fresh = []
        for env in envelopes:
            if env.event.event_id in new_ids:
                new_ids.discard(env.event.event_id)  # a re-sent event inside the same batch
                fresh.append(env)
        return fresh

    def _after_commit(self, decoded: _Decoded, outcome: _Outcome, seconds: float) -> None:
        self.projection.committed()
        consumer = self._require_consumer()
        applied, rejected, duplicates = outcome.applied, outcome.rejected, outcome.duplicates
        for listener in self._commit_listeners:
            listener(applied, outcome.committed_at)
        for key, (_, new) in decoded.moves.items():
            if key in self._expected:
                self._expected[key] = new
        commits = [TopicPartition(t, p, new) for (t, p), (_, new) in decoded.moves.items()]
        try:
            consumer.commit(offsets=commits, asynchronous=True)
        except KafkaException as exc:
            self._log.debug("kafka commit skipped", error=describe_kafka_error(exc))
        group = self.group_id
        for event_type, count in Counter(env.event.event_type for env in applied).items():
            self._metrics.applied.labels(group, event_type).inc(count)
        for rejection in rejected:
            self._metrics.dead_lettered.labels(group, rejection.reason).inc()
        for letter in decoded.letters:
            self._metrics.dead_lettered.labels(group, letter.reason).inc()
        if duplicates:
            self._metrics.duplicates.labels(group).inc(duplicates)
        self._metrics.batch_size.labels(group).observe(decoded.messages)
        self._metrics.batch_seconds.labels(group).observe(seconds)
        self.events_applied += len(applied)
        self.events_dead_lettered += len(rejected) + len(decoded.letters)
        self._update_lag()
        self._log.debug(
            "batch committed",
            messages=decoded.messages,
            applied=len(applied),
            dead_lettered=len(rejected) + len(decoded.letters),
            duplicates=duplicates,
            ms=round(seconds * 1000, 1),
        )

    # -- failures ----------------------------------------------------------------

    def _wait_and_rewind(self, what: str, error: str, backoff: float) -> None:
        """Pause, keep polling (stay in the group), wait ``backoff``, then resume."""
        consumer = self._require_consumer()
        self._log.warning(f"{what}, retrying the batch", error=error, retry_in_s=backoff)
        assignment = consumer.assignment()
        consumer.pause(assignment)
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not self._stop.is_set():
            self.last_progress = time.monotonic()
            consumer.poll(min(0.1, backoff))  # serves rebalances; paused: no messages
        # rewind every synced partition: whatever was fetched meanwhile is re-read
        synced = [TopicPartition(t, p, off) for (t, p), off in self._expected.items()]
        current = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        for tp in synced:
            if (tp.topic, tp.partition) in current:
                with contextlib.suppress(KafkaException):
                    consumer.seek(tp)
        consumer.resume(
            [tp for tp in consumer.assignment() if (tp.topic, tp.partition) not in self._pending]
        )

    def _resync(self, keys: list[TopicPartitionKey]) -> None:
        """After a conflict: re-read the partitions' offsets (retried while the database
        is briefly unavailable; if it stays down, the partitions wait paused, as at an
        assignment, until :meth:`_sync_pending` can read them)."""
        consumer = self._require_consumer()

        def load() -> dict[TopicPartitionKey, int]:
            with self._engine.begin() as connection:
                return self._offsets.load(connection, keys)

        try:
            stored = with_retries("re-reading offsets", load, self._stop)
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            self.db_ok = False
            owned = [key for key in keys if key in self._expected]
            consumer.pause([TopicPartition(t, p) for t, p in owned])
            for key in owned:
                self._expected.pop(key, None)
                self._next.pop(key, None)
            self._pending.update(owned)
            return
        for key, offset in stored.items():
            if key in self._expected:
                self._expected[key] = offset
                try:
                    consumer.seek(TopicPartition(key[0], key[1], offset))
                except KafkaException:
                    self._pending.add(key)

    # -- progress ----------------------------------------------------------------

    def _is_caught_up(self, positions: dict[TopicPartitionKey, int]) -> bool:
        """Every owned partition's position (committed, or read) at its end offset seen
        when it was first checked. True for a member that owns no partition (more
        members than partitions, or not assigned yet): the group check decides."""
        if self._pending:
            return False
        unknown = [key for key in positions if key not in self._end_at_start]
        if unknown:
            try:
                ends = with_retries(
                    "reading end offsets", lambda: end_offsets(self.settings, unknown), self._stop
                )
            except KafkaException as exc:
                self._log.warning("cannot read end offsets yet", error=describe_kafka_error(exc))
                return False
            self._end_at_start.update(ends)
        return all(next_offset >= self._end_at_start[key] for key, next_offset in positions.items())

    def _group_caught_up(self) -> bool:
        """Every partition of the topic, whichever member owns it, committed in the
        database up to its end offset when first checked.

        Our own partitions being done is not enough: a member killed without leaving
        keeps its partitions until its session times out (and one that joins late may
        get none), so a catch-up run that stopped at its own share could leave part of
        the topic unapplied. Checked at most once a second.
        """
        now = time.monotonic()
        if now < self._next_group_check:
            return False
        self._next_group_check = now + GROUP_CHECK_INTERVAL_S
        try:
            if not self._group_end_at_start:
                ends = with_retries(
                    "reading end offsets",
                    lambda: topic_end_offsets(self.settings, self.topic),
                    self._stop,
                )
                if ends is None:
                    raise KafkaException(f"topic {self.topic} is not in the metadata")
                self._group_end_at_start = ends
            with self._engine.connect() as connection:
                committed = self._offsets.load_all(connection)
        except (KafkaException, DBAPIError) as exc:
            self._log.warning("cannot check the group's progress yet", error=str(exc)[:300])
            return False
        behind = {
            key: end for key, end in self._group_end_at_start.items() if committed.get(key, 0) < end
        }
        if behind:
            self._log.info(
                "waiting for partitions of other members",
                partitions=[p for _, p in sorted(behind)],
            )
        return not behind

    def _update_lag(self) -> None:
        consumer = self._require_consumer()
        for (topic, partition), next_offset in self._expected.items():
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            if high >= 0:
                self._metrics.lag.labels(self.group_id, topic, str(partition)).set(
                    max(0, high - next_offset)
                )

    def _require_consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("GroupRunner.start() was not called")
        return self._consumer


class CallerThreadExecutor(Executor):
    """Runs each submitted call at once, on the caller's thread; returns its settled
    Future (so the runner's bookkeeping is the same with or without a writer thread)."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class StaleOffsets(ShopstreamError):
    """The database's next offset of a partition is outside what the partition holds."""

    def __init__(self, group_id: str, stale: dict[TopicPartitionKey, tuple[int, int, int]]) -> None:
        parts = []
        for topic in sorted({topic for topic, _ in stale}):
            described = []
            for (t, partition), (offset, low, high) in sorted(stale.items()):
                if t == topic:
                    where = f"beyond its end {high}" if offset > high else f"before its start {low}"
                    described.append(f"partition {partition} at {offset} {where}")
            parts.append(f"{topic} {', '.join(described)}")
        super().__init__(
            f"stored offsets of {group_id} do not fit the topic: {'; '.join(parts)} "
            "(topic recreated, broker wiped, or events deleted by retention); nothing was "
            f"read or written. Replay from the start: 'shopstream consume rebuild {group_id}', "
            f"or move the offsets: 'shopstream consume reset-offsets {group_id} "
            "--to earliest|latest'"
        )


RETRY_ATTEMPTS = 4
RETRY_BACKOFF_S = 0.25
"""Recovery look-ups (offsets re-read, end offsets) are tried this many times, waiting
0.25, 0.5, 1 s in between; then the caller falls back (pauses, or tries on a later loop)."""


def with_retries(what: str, call: Callable[[], _T], stop: threading.Event | None = None) -> _T:
    """``call()``, retried with backoff while it fails transiently (database or Kafka
    unavailable); bounded: the last transient error is raised."""
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return call()
        except Exception as exc:
            transient = is_transient_db_error(exc) or is_transient_kafka_error(exc)
            if not transient or attempt == RETRY_ATTEMPTS or (stop and stop.is_set()):
                raise
            delay = RETRY_BACKOFF_S * 2 ** (attempt - 1)
            log.warning(f"{what} failed; retrying", error=_describe_transient(exc), in_s=delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _describe_transient(exc: BaseException) -> str:
    return describe_kafka_error(exc) if isinstance(exc, KafkaException) else describe_db_error(exc)


GROUP_CHECK_INTERVAL_S = 1.0
"""How often a runner caught up on its own partitions checks the rest of the group."""


def _rejected_letters(
    batch: Sequence[Message], rejections: list[Rejection], refused: list[RefusedEvent]
) -> list[DeadLetter]:
    """Dead letters of the events the projection or the database refused, with their
    original messages (and the database's code and message in headers)."""
    if not rejections and not refused:
        return []
    messages = {coordinates(m): m for m in batch}

    def message_of(env: Envelope) -> Message:
        return messages[(env.topic, env.partition, env.offset)]

    letters = [
        _letter(message_of(r.envelope), r.reason, r.detail, r.envelope.event.event_id)
        for r in rejections
    ]
    letters += [
        _letter(
            message_of(r.envelope),
            db_refusals.REASON,
            str(r.refusal),
            r.envelope.event.event_id,
            details=((DB_CODE, r.refusal.code), (DB_MESSAGE, r.refusal.message)),
        )
        for r in refused
    ]
    return letters


def _letter(
    message: Message,
    reason: str,
    error: str,
    event_id: str | None = None,
    details: tuple[tuple[str, str], ...] = (),
) -> DeadLetter:
    topic, partition, offset = coordinates(message)
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    key = message.key()
    value = message.value()
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key.encode() if isinstance(key, str) else key,
        value=value.encode() if isinstance(value, str) else value,
        headers=[(k, v.encode() if isinstance(v, str) else v or b"") for k, v in pairs],
        reason=reason,
        error=error,
        event_id=event_id,
        details=details,
    )


def assign_unpaused(consumer: Consumer, positions: dict[TopicPartitionKey, int]) -> None:
    """Add partitions to the assignment, fetching from ``positions``, unpaused.

    librdkafka keeps a partition's pause through its unassignment, so a partition paused
    while the runner waited to retry, then lost and assigned back, would stay paused, and
    silently never be read again. The pause is cleared first, before the assignment: a
    resume after it could outdate the assignment's start offset (librdkafka #2190).
    """
    partitions = [TopicPartition(t, p, offset) for (t, p), offset in positions.items()]
    consumer.resume([TopicPartition(t, p) for t, p in positions])
    consumer.incremental_assign(partitions)


def _position(next_offset: int) -> int:
    """Where to start a partition: its stored next offset, or for one the group never
    read (0) its first offset still held, whatever retention deleted."""
    return next_offset if next_offset > 0 else OFFSET_BEGINNING


def _describe(offsets: dict[TopicPartitionKey, int]) -> dict[str, int]:
    return {f"{t}[{p}]": off for (t, p), off in sorted(offsets.items())}
