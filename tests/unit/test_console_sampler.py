"""The console sampler's derived figures: rates between samples, and a Kafka/database
offset difference flagged only once it has lasted (Kafka is committed after the DB)."""

from __future__ import annotations

from typing import Any

from shopstream.config import Settings
from shopstream.console.sampler import DISAGREE_AFTER_S, Sampler


def sample(t_ms: int, end: int, committed: int | None, db: int | None) -> dict[str, Any]:
    return {
        "t": t_ms,
        "topics": [{"topic": "order-events", "name": "order-events", "end": end}],
        "groups": [
            {
                "group": "order-state",
                "topic": "order-events",
                "partitions": [{"partition": 0, "end": end, "committed": committed, "db": db}],
            }
        ],
    }


def derive(sampler: Sampler, data: dict[str, Any], now: float) -> dict[str, Any]:
    sampler._rates(data)
    sampler._flag_disagreements(data, now)
    sampler._previous = data
    return data


def test_rates_lag_and_a_lasting_disagreement() -> None:
    sampler = Sampler(Settings.load())
    first = derive(sampler, sample(0, 100, 100, 100), now=0.0)
    assert first["topics"][0]["rate"] == 0.0
    assert first["groups"][0]["disagreements"] == 0

    second = derive(sampler, sample(2000, 300, 100, 250), now=2.0)
    group = second["groups"][0]
    assert second["topics"][0]["rate"] == 100.0  # 200 events in 2 s
    assert group["rate"] == 75.0  # the database moved 150 in 2 s
    assert group["lag"] == 50
    assert group["partitions"][0]["disagree"] is False  # just now: not yet flagged

    later = derive(sampler, sample(14000, 300, 100, 300), now=2.0 + DISAGREE_AFTER_S)
    assert later["groups"][0]["partitions"][0]["disagree"] is True
    assert later["groups"][0]["disagreements"] == 1

    caught_up = derive(sampler, sample(16000, 300, 300, 300), now=4.0 + DISAGREE_AFTER_S)
    assert caught_up["groups"][0]["disagreements"] == 0
    again = derive(sampler, sample(18000, 400, 300, 400), now=6.0 + DISAGREE_AFTER_S)
    assert again["groups"][0]["partitions"][0]["disagree"] is False  # a new difference


def test_no_kafka_commit_and_no_database_offset_agree() -> None:
    sampler = Sampler(Settings.load())
    data = derive(sampler, sample(0, 10, None, None), now=100.0)
    data = derive(sampler, sample(60_000, 10, None, None), now=200.0)
    assert data["groups"][0]["disagreements"] == 0
    assert data["groups"][0]["lag"] == 10
