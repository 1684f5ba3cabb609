"""Prometheus metrics of a service or relay process (its own registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ServiceMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "shopstream_http_requests_total",
            "HTTP requests answered, by route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "shopstream_http_request_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.replays = Counter(
            "shopstream_idempotent_replays_total",
            "Requests answered with the stored response of their Idempotency-Key",
            registry=r,
        )
        self.published = Counter(
            "shopstream_outbox_published_total",
            "Outbox events acknowledged by Kafka and marked sent",
            ["event_type"],
            registry=r,
        )
        self.relay_lag = Histogram(
            "shopstream_outbox_relay_lag_seconds",
            "From the outbox row's commit to Kafka's acknowledgement",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.relay_failures = Counter(
            "shopstream_outbox_relay_failures_total",
            "Relay passes that failed (Kafka, registry or database) and were retried",
            registry=r,
        )
        self.pending = Gauge(
            "shopstream_outbox_pending",
            "Outbox rows read but not yet acknowledged in the relay's last pass",
            registry=r,
        )
