"""Small pure parts of the services: Idempotency-Key parsing and fingerprints, and the
request each simulated event becomes under ``simulate --via-api``."""

from __future__ import annotations

from shopstream.events import CartCheckedOut, OrderCreated
from shopstream.services.api_client import call_for
from shopstream.services.idempotency import MAX_KEY_LENGTH, fingerprint, parse_key
from shopstream.simulation.simulator import SimulationConfig, Simulator, invalid_kind


def test_keys_are_sf_strings_or_bare_tokens() -> None:
    assert parse_key('"8e03978e-40d5-43e8-bc93-6894a57f9324"') == (
        "8e03978e-40d5-43e8-bc93-6894a57f9324"
    )
    assert parse_key("abc") == "abc"
    assert parse_key(f'"{"k" * MAX_KEY_LENGTH}"') == "k" * MAX_KEY_LENGTH
    for bad in ['""', "", "  ", "k" * (MAX_KEY_LENGTH + 1), "caf\u00e9", "a\tb"]:
        assert parse_key(bad) is None, bad


def test_fingerprints_separate_method_path_and_body() -> None:
    one = fingerprint("POST", "/carts/a/items", b'{"q":1}')
    assert one == fingerprint("POST", "/carts/a/items", b'{"q":1}')
    assert one != fingerprint("DELETE", "/carts/a/items", b'{"q":1}')
    assert one != fingerprint("POST", "/carts/b/items", b'{"q":1}')
    assert one != fingerprint("POST", "/carts/a/items", b'{"q":2}')
    # length-prefixed parts: moving bytes between path and body changes the print
    assert fingerprint("POST", "/a", b"b") != fingerprint("POST", "/ab", b"")


def test_every_simulated_event_but_order_created_becomes_one_request() -> None:
    config = SimulationConfig(customers=10, orders=30, seed=3, invalid_rate=0.1)
    events = list(Simulator(config).events())
    calls = [call_for(event) for event in events]
    for event, call in zip(events, calls, strict=True):
        if isinstance(event, OrderCreated):
            assert call is None
            continue
        assert call is not None and call.key == event.event_id
        assert call.event_type == event.event_type
        assert call.expect_refusal == (invalid_kind(event) is not None)
        assert call.events == (2 if isinstance(event, CartCheckedOut) else 1)
    kinds = {(c.method, c.path.split("/")[1], c.path.split("/")[-1]) for c in calls if c}
    assert ("DELETE", "carts", "") not in kinds
    assert {method for method, _, _ in kinds} == {"POST", "DELETE"}
