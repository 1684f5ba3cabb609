"""How a local Kafka cluster is doing: its active controller and replication.

The active controller is read from each node's ``quorum-state`` file (KRaft writes
the leader it voted for with its epoch there); the newest epoch among running nodes
wins. Clients cannot ask for it: a KRaft broker's metadata names a random broker as
"controller". Under-replicated partitions come from a metadata request: a partition
whose in-sync replicas are fewer than its replicas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from shopstream.stack.broker import KafkaPart


@dataclass(frozen=True)
class ClusterHealth:
    active_controller: int | None
    """Node id of the quorum leader (None: no running node knows one)."""
    under_replicated: list[str] | None
    """``topic/partition`` with fewer in-sync replicas than replicas (None: no answer)."""
    brokers_in_metadata: int


def active_controller(nodes: Sequence[KafkaPart]) -> int | None:
    states = [state for node in nodes if node.is_running() and (state := node.quorum_state())]
    leaders = [(epoch, leader) for leader, epoch in states if leader >= 0]
    return max(leaders)[1] if leaders else None


def under_replicated(bootstrap_servers: str, timeout: float = 5.0) -> tuple[list[str], int] | None:
    """Under-replicated ``topic/partition`` names and the broker count, or None."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return None
    lagging = sorted(
        f"{name}/{partition.id}"
        for name, topic in metadata.topics.items()
        for partition in topic.partitions.values()
        if len(partition.isrs) < len(partition.replicas)
    )
    return lagging, len(metadata.brokers)


def cluster_health(nodes: Sequence[KafkaPart], bootstrap_servers: str) -> ClusterHealth:
    replication = under_replicated(bootstrap_servers)
    return ClusterHealth(
        active_controller=active_controller(nodes),
        under_replicated=None if replication is None else replication[0],
        brokers_in_metadata=0 if replication is None else replication[1],
    )
