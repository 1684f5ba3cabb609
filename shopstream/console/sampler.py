"""The console's one view of the running pipeline, sampled every few seconds.

A :class:`Sampler` thread asks, each ``interval``: the broker for the end offsets of
the project's topics and DLQs and the offsets each group committed to Kafka; the
database for each group's own offsets, the tables' row counts and the shop's figures;
and reads the DLQs' new dead letters (headers only) since the last sample. Every
answer is a JSON-ready dict (:attr:`Sampler.latest`), kept for ``history_s`` seconds
(:meth:`Sampler.history`) so a page that opens draws the last minutes at once, then
follows the stream. Every read is bounded: offsets and aggregates, the last
``DLQ_WINDOW`` dead letters of each DLQ partition, the last ``DLQ_LATEST`` shown.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from schemas import CART_TOPIC, ORDER_TOPIC, dlq_topic
from shopstream.config import Settings
from shopstream.console.shop import shop_figures
from shopstream.db.engine import describe_db_error
from shopstream.db.models import (
    Cart,
    ConsumerOffset,
    CustomerStats,
    DlqRedrive,
    Order,
    ProductSales,
)
from shopstream.errors import ShopstreamError
from shopstream.groups import GROUP_SPECS
from shopstream.inspection.cluster import Cluster
from shopstream.inspection.consumer_groups import committed_offsets, describe_groups
from shopstream.inspection.db_offsets import read_only_engine
from shopstream.inspection.decode import message_headers, message_timestamp, text_of
from shopstream.inspection.dlq_reader import GROUP_HEADER, REASON_HEADER, UNKNOWN_REASON
from shopstream.inspection.reader import ReadPlan, TopicReader
from shopstream.inspection.timeline import FETCH_WAIT_MS
from shopstream.logs import get_logger
from shopstream.serde import EVENT_TYPE_HEADER

log = get_logger("shopstream.console")

TABLES = {
    "orders": Order,
    "carts": Cart,
    "product_sales": ProductSales,
    "customer_stats": CustomerStats,
}
"""The tables the pipeline picture shows (each group's main ones) and counts."""
PICTURED_GROUPS = sorted(GROUP_SPECS.values(), key=lambda spec: spec.topic != CART_TOPIC)
"""The groups, those of cart-events first (the picture lists cart-events first)."""
DLQ_WINDOW = 10_000
"""At most this many dead letters per DLQ partition are read when the console starts."""
DLQ_LATEST = 50
BUCKET_MS = 60_000
BUCKETS = 30
DISAGREE_AFTER_S = 10.0
"""Kafka's and the database's offsets may differ for a moment (Kafka is committed
after the database); a difference that lasts this long is flagged."""


@dataclass
class _DlqTail:
    """Where the sampler is in one DLQ partition, and what it has counted."""

    next_offset: int | None = None
    buckets: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    totals: Counter[tuple[str, str]] = field(default_factory=Counter)


class Sampler:
    """Samples the pipeline in a thread; :meth:`start`, :meth:`stop`."""

    def __init__(
        self, settings: Settings, *, interval: float = 2.0, history_s: float = 600.0
    ) -> None:
        self.settings = settings
        self.interval = interval
        self._history: deque[dict[str, Any]] = deque(maxlen=max(2, int(history_s / interval)))
        self._latest: dict[str, Any] | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tails: dict[tuple[str, int], _DlqTail] = {}
        self._disagree_since: dict[tuple[str, str, int], float] = {}
        self._previous: dict[str, Any] | None = None
        self._latest_letters: deque[dict[str, Any]] = deque(maxlen=DLQ_LATEST)
        self.cycles = 0
        self.errors = 0
        self.on_sample: Callable[[dict[str, Any]], None] | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="console-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.sample_once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    # -- reading --------------------------------------------------------------------

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            return self._latest

    def history(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._history)

    # -- one sample -------------------------------------------------------------------

    def sample_once(self) -> dict[str, Any]:
        now = time.time()
        errors: list[str] = []
        sample: dict[str, Any] = {"t": int(now * 1000), "errors": errors}
        try:
            self._kafka_part(sample, now)
        except ShopstreamError as exc:
            errors.append(exc.message)
        except Exception as exc:  # a sampler must outlive any one failure
            errors.append(f"{type(exc).__name__}: {exc}")
        try:
            self._database_part(sample)
        except ShopstreamError as exc:
            errors.append(exc.message)
        except SQLAlchemyError as exc:
            errors.append(f"database: {describe_db_error(exc)}")
        self._rates(sample)
        self._flag_disagreements(sample, now)
        self.cycles += 1
        if errors:
            self.errors += 1
            log.warning("console.sample_failed", errors=errors)
        with self._lock:
            self._seq += 1
            sample["seq"] = self._seq
            self._latest = sample
            self._history.append(_history_entry(sample))
        self._previous = sample
        return sample

    def _kafka_part(self, sample: dict[str, Any], now: float) -> None:
        settings = self.settings
        with Cluster(settings, timeout=5.0) as cluster:
            known = cluster.metadata().topics
            names = [
                settings.topic(CART_TOPIC),
                settings.topic(ORDER_TOPIC),
                dlq_topic(settings.topic(CART_TOPIC)),
                dlq_topic(settings.topic(ORDER_TOPIC)),
            ]
            present = [name for name in names if name in known]
            keys = [(name, pid) for name in present for pid in cluster.partition_ids(name)]
            marks = cluster.watermarks(keys)
            topics = []
            for name in present:
                parts = [(key, mark) for key, mark in marks.items() if key[0] == name]
                topics.append(
                    {
                        "topic": name,
                        "name": name.removeprefix(settings.shopstream_topic_prefix),
                        "partitions": len(parts),
                        "end": sum(mark.end for _, mark in parts),
                        "messages": sum(mark.messages for _, mark in parts),
                    }
                )
            sample["topics"] = topics
            groups = []
            for spec in PICTURED_GROUPS:
                group, logical = spec.name, spec.topic
                kafka_group = settings.kafka_group(group)
                topic = settings.topic(logical)
                committed = committed_offsets(cluster, kafka_group)
                info = describe_groups(cluster, [kafka_group])[0]
                partitions = [
                    {
                        "partition": pid,
                        "end": marks[(name, pid)].end,
                        "committed": committed.get((name, pid)),
                        "db": None,
                    }
                    for name, pid in keys
                    if name == topic
                ]
                groups.append(
                    {
                        "group": group,
                        "topic": logical,
                        "state": info.state,
                        "members": len(info.members),
                        "partitions": partitions,
                        "tables": [name for name in spec.tables if name in TABLES],
                    }
                )
            sample["groups"] = groups
        sample["dead_letters"] = self._dead_letters(present, marks)

    def _dead_letters(
        self, present: list[str], marks: dict[tuple[str, int], Any]
    ) -> dict[str, Any]:
        """New dead letters since the last sample (headers only), counted per minute."""
        prefix = self.settings.shopstream_topic_prefix
        latest: list[dict[str, Any]] = []
        for (topic, pid), mark in marks.items():
            if topic not in present or not topic.endswith(".dlq"):
                continue
            tail = self._tails.setdefault((topic, pid), _DlqTail())
            start = tail.next_offset
            if start is None:
                start = max(mark.start, mark.end - DLQ_WINDOW)
            if start < mark.end:
                plan = ReadPlan(topic, {pid: start}, {pid: mark.end})
                with (
                    TopicReader(
                        self.settings, 5.0, **{"fetch.wait.max.ms": FETCH_WAIT_MS}
                    ) as reader,
                    closing(reader.messages(plan)) as stream,
                ):
                    for message in stream:
                        if (message.offset() or 0) >= mark.end:
                            break
                        self._count(tail, topic.removeprefix(prefix), message, latest)
            tail.next_offset = max(start, mark.end)
        self._keep_latest(latest)
        cutoff = (int(time.time() * 1000) // BUCKET_MS - BUCKETS + 1) * BUCKET_MS
        buckets: Counter[tuple[int, str, str, str]] = Counter()
        totals: Counter[tuple[str, str, str]] = Counter()
        for (topic, _pid), tail in self._tails.items():
            name = topic.removeprefix(prefix)
            for (minute, group, reason), count in tail.buckets.items():
                if minute >= cutoff:
                    buckets[(minute, name, group, reason)] += count
            for (group, reason), count in tail.totals.items():
                totals[(name, group, reason)] += count
            for key in [k for k in tail.buckets if k[0] < cutoff]:
                del tail.buckets[key]
        return {
            "bucket_ms": BUCKET_MS,
            "buckets": [
                {"t": t, "topic": topic, "group": group, "reason": reason, "count": count}
                for (t, topic, group, reason), count in sorted(buckets.items())
            ],
            "totals": [
                {"topic": topic, "group": group, "reason": reason, "count": count}
                for (topic, group, reason), count in sorted(
                    totals.items(), key=lambda item: (-item[1], item[0])
                )
            ],
            "latest": list(self._latest_letters),
        }

    def _keep_latest(self, new: list[dict[str, Any]]) -> None:
        for letter in new:
            self._latest_letters.appendleft(letter)

    def _count(
        self, tail: _DlqTail, topic: str, message: Any, latest: list[dict[str, Any]]
    ) -> None:
        headers = message_headers(message)
        group = headers.get(GROUP_HEADER) or "?"
        reason = headers.get(REASON_HEADER) or UNKNOWN_REASON
        stamp = message_timestamp(message) or 0
        tail.buckets[(stamp // BUCKET_MS * BUCKET_MS, group, reason)] += 1
        tail.totals[(group, reason)] += 1
        latest.append(
            {
                "topic": topic,
                "partition": message.partition(),
                "offset": message.offset(),
                "t": stamp,
                "group": group,
                "reason": reason,
                "error": headers.get("dlq.error"),
                "key": text_of(message.key()),
                "event_type": headers.get(EVENT_TYPE_HEADER),
            }
        )

    def _database_part(self, sample: dict[str, Any]) -> None:
        engine = read_only_engine(self.settings.database_url)
        if engine is None:
            sample["database"] = "no database file yet"
            return
        try:
            with engine.connect() as connection:
                if not engine.dialect.has_table(connection, "consumer_offsets"):
                    sample["database"] = "the database has no tables yet"
                    return
                self._db_offsets(connection, sample)
                sample["tables"] = {
                    name: int(connection.scalar(select(func.count()).select_from(model)) or 0)
                    for name, model in TABLES.items()
                }
                if engine.dialect.has_table(connection, DlqRedrive.__tablename__):
                    sample["redriven"] = int(
                        connection.scalar(select(func.count()).select_from(DlqRedrive)) or 0
                    )
                sample["shop"] = shop_figures(connection)
                sample["database"] = "ok"
        finally:
            engine.dispose()

    def _db_offsets(self, connection: Any, sample: dict[str, Any]) -> None:
        c = ConsumerOffset.__table__.c
        rows = connection.execute(select(c.group_id, c.topic, c.partition, c.next_offset))
        stored = {(g, t, int(p)): int(o) for g, t, p, o in rows}
        for group in sample.get("groups", []):
            topic = self.settings.topic(group["topic"])
            for part in group["partitions"]:
                part["db"] = stored.get((group["group"], topic, part["partition"]))

    # -- derived figures ------------------------------------------------------------------

    def _rates(self, sample: dict[str, Any]) -> None:
        """Events/s into each topic (end offsets) and applied by each group (DB offsets)."""
        previous = self._previous
        seconds = (sample["t"] - previous["t"]) / 1000 if previous else 0.0
        before_topics = {t["topic"]: t["end"] for t in (previous or {}).get("topics", [])}
        for topic in sample.get("topics", []):
            before = before_topics.get(topic["topic"])
            topic["rate"] = _rate(topic["end"], before, seconds)
        before_groups = {
            g["group"]: _sum(p["db"] for p in g["partitions"])
            for g in (previous or {}).get("groups", [])
        }
        for group in sample.get("groups", []):
            parts = group["partitions"]
            group["end"] = sum(p["end"] for p in parts)
            group["committed"] = _sum(p["committed"] for p in parts)
            group["db"] = _sum(p["db"] for p in parts)
            group["lag"] = sum(max(0, p["end"] - (p["db"] or 0)) for p in parts)
            group["rate"] = _rate(group["db"], before_groups.get(group["group"]), seconds)

    def _flag_disagreements(self, sample: dict[str, Any], now: float) -> None:
        """Mark partitions whose Kafka and database offsets have differed for a while."""
        seen: set[tuple[str, str, int]] = set()
        for group in sample.get("groups", []):
            warnings = 0
            for part in group["partitions"]:
                key = (group["group"], group["topic"], part["partition"])
                differs = part["db"] is not None and part["committed"] not in (None, part["db"])
                if not differs:
                    part["disagree"] = False
                    continue
                seen.add(key)
                since = self._disagree_since.setdefault(key, now)
                part["disagree"] = now - since >= DISAGREE_AFTER_S
                warnings += part["disagree"]
            group["disagreements"] = warnings
        for key in [k for k in self._disagree_since if k not in seen]:
            del self._disagree_since[key]


def _sum(values: Any) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _rate(now: int | None, before: int | None, seconds: float) -> float:
    if now is None or before is None or seconds <= 0:
        return 0.0
    return round(max(0, now - before) / seconds, 1)


def _history_entry(sample: dict[str, Any]) -> dict[str, Any]:
    """What the charts need of a sample (the rest is only shown for the latest)."""
    return {
        "t": sample["t"],
        "topics": [
            {"name": t["name"], "end": t["end"], "rate": t.get("rate", 0.0)}
            for t in sample.get("topics", [])
        ],
        "groups": [
            {
                "group": g["group"],
                "rate": g.get("rate", 0.0),
                "partitions": [
                    [p["partition"], p["end"], p["committed"], p["db"]] for p in g["partitions"]
                ],
            }
            for g in sample.get("groups", [])
        ],
    }
