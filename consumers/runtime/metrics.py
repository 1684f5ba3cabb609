"""Prometheus metrics of one daemon process (its own registry, no global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ConsumerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.applied = Counter(
            "shopstream_events_applied_total",
            "Events applied to a projection",
            ["group", "event_type"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "shopstream_events_dead_lettered_total",
            "Events sent to the dead-letter topic",
            ["group", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "shopstream_events_duplicate_total",
            "Events skipped because their event_id was already processed",
            ["group"],
            registry=r,
        )
        self.batch_size = Histogram(
            "shopstream_batch_size",
            "Messages per applied batch",
            ["group"],
            registry=r,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
        )
        self.batch_seconds = Histogram(
            "shopstream_batch_seconds",
            "Time to decode, apply and commit one batch",
            ["group"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.lag = Gauge(
            "shopstream_consumer_lag",
            "End offset minus next offset to apply",
            ["group", "topic", "partition"],
            registry=r,
        )
        self.db_retries = Counter(
            "shopstream_db_retries_total",
            "Batches retried because the database failed",
            ["group"],
            registry=r,
        )
        self.conflicts = Counter(
            "shopstream_offset_conflicts_total",
            "Batches dropped because another consumer moved the stored offsets",
            ["group"],
            registry=r,
        )
