"""The simulator's shoppers as HTTP requests to ``shopstream serve`` (``simulate --via-api``).

Each simulated event becomes the command that causes it (:func:`call_for`):
CartItemAdded → ``POST /carts/{id}/items``, CartCheckedOut → ``POST .../checkout``
(which also creates the order, so OrderCreated sends nothing), OrderPaid → ``POST
/orders/{id}/pay`` and so on. The event's id is the request's ``Idempotency-Key``, so
a retry (or a second run with the same seed) has one effect.

Requests go out on ``concurrency`` lanes: a customer's carts and orders always use the
same lane, one request at a time, so every aggregate's commands arrive in the
simulated order while customers run in parallel. A request that gets no answer
(connection refused or reset: a service restarting), a 5xx, or a 409
``idempotency-key-in-flight`` is retried with the same key until ``retry_for_s``.
With ``repeat_fraction`` > 0 that share of answered requests is sent once more with
the same key, and the answer must be the stored one (the ``Idempotent-Replayed``
header and the same body).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shopstream.events import (
    CartCheckedOut,
    CartEvent,
    CartItemAdded,
    CartItemRemoved,
    DomainEvent,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderPaid,
    OrderShipped,
)
from shopstream.services.idempotency import REPLAY_HEADER
from shopstream.simulation.simulator import invalid_kind

RETRY_PAUSE_S = 0.2
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ApiCall:
    method: str
    path: str
    key: str
    event_type: str
    expect_refusal: bool
    """An injected invalid event: the service must refuse it (4xx)."""
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None

    @property
    def events(self) -> int:
        """Events the command writes when it succeeds (a checkout writes two)."""
        return 2 if self.event_type == CartCheckedOut.event_type else 1


def call_for(event: DomainEvent) -> ApiCall | None:
    """The request that makes the service emit ``event`` (None for OrderCreated)."""
    refusal = invalid_kind(event) is not None

    def call(method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> ApiCall:
        return ApiCall(
            method, path, event.event_id, event.event_type, refusal, body, params or None
        )

    match event:
        case CartItemAdded():
            body = {"customer_id": event.customer_id, "sku": event.sku, "quantity": event.quantity}
            return call("POST", f"/carts/{event.cart_id}/items", body)
        case CartItemRemoved():
            path = f"/carts/{event.cart_id}/items/{event.sku}"
            return call("DELETE", path, quantity=event.quantity)
        case CartCheckedOut():
            return call("POST", f"/carts/{event.cart_id}/checkout", {"order_id": event.order_id})
        case OrderCreated():
            return None
        case OrderPaid():
            body = {
                "payment_id": event.payment_id,
                "amount": str(event.amount),
                "currency": event.currency,
            }
            return call("POST", f"/orders/{event.order_id}/pay", body)
        case OrderConfirmed():
            return call("POST", f"/orders/{event.order_id}/confirm")
        case OrderShipped():
            body = {"carrier": event.carrier, "tracking_number": event.tracking_number}
            return call("POST", f"/orders/{event.order_id}/ship", body)
        case OrderCancelled():
            return call("POST", f"/orders/{event.order_id}/cancel", {"reason": event.reason})
    raise TypeError(f"no command for {type(event).__name__}")


@dataclass(frozen=True, slots=True)
class Outcome:
    call: ApiCall
    status: int
    """The final answer's status, 0 when none came before the deadline."""
    attempts: int
    repeated: bool = False
    """Sent once more after its answer (``repeat_fraction``)."""
    replay_ok: bool = True
    """The repeat got the stored answer back (same status and body, replay header)."""


@dataclass
class DriveReport:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def by_status(self) -> Counter[int]:
        return Counter(o.status for o in self.outcomes)

    @property
    def succeeded(self) -> list[Outcome]:
        return [o for o in self.outcomes if 200 <= o.status < 300]

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if 400 <= o.status < 500]

    @property
    def unexpected(self) -> list[Outcome]:
        """No answer, a 5xx, a valid command refused or an invalid one accepted, or a
        repeat that did not get the stored answer."""
        return [
            o
            for o in self.outcomes
            if not (200 <= o.status < 500)
            or (o.status >= 400) != o.call.expect_refusal
            or not o.replay_ok
        ]

    @property
    def retried(self) -> int:
        """Requests sent more than once (retries after no answer, and repeats)."""
        return sum(1 for o in self.outcomes if o.attempts > 1 or o.repeated)


def _lane_of(event: DomainEvent, customers: dict[str, str]) -> str:
    """The customer behind ``event`` (orders: the customer who checked the cart out)."""
    if isinstance(event, CartEvent):
        if isinstance(event, CartCheckedOut):
            customers[event.order_id] = event.customer_id
        return event.customer_id
    order_id: str = event.order_id
    return customers.get(order_id, order_id)


class ApiDriver:
    def __init__(
        self,
        base_url: str,
        concurrency: int = 16,
        *,
        repeat_fraction: float = 0.0,
        retry_for_s: float = 60.0,
        seed: int = 0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._concurrency = concurrency
        self._repeat_fraction = repeat_fraction
        self._retry_for_s = retry_for_s
        self._rng = random.Random(seed)

    def run(self, events: Iterable[DomainEvent]) -> DriveReport:
        return asyncio.run(self.drive(events))

    async def drive(self, events: Iterable[DomainEvent]) -> DriveReport:
        report = DriveReport()
        started = time.perf_counter()
        lanes: list[asyncio.Queue[ApiCall | None]] = [
            asyncio.Queue(maxsize=64) for _ in range(self._concurrency)
        ]
        limits = httpx.Limits(max_connections=self._concurrency, max_keepalive_connections=None)
        async with httpx.AsyncClient(
            base_url=self._base_url, limits=limits, timeout=REQUEST_TIMEOUT_S
        ) as client:
            workers = [asyncio.create_task(self._lane(client, queue, report)) for queue in lanes]
            customers: dict[str, str] = {}
            for event in events:
                call = call_for(event)
                if call is None:
                    continue
                lane = hash(_lane_of(event, customers)) % self._concurrency
                await lanes[lane].put(call)
            for queue in lanes:
                await queue.put(None)
            await asyncio.gather(*workers)
        report.seconds = time.perf_counter() - started
        return report

    async def _lane(
        self, client: httpx.AsyncClient, queue: asyncio.Queue[ApiCall | None], report: DriveReport
    ) -> None:
        while (call := await queue.get()) is not None:
            answer, attempts = await self._send(client, call)
            if answer is None:
                report.outcomes.append(Outcome(call, 0, attempts))
                continue
            repeated, replay_ok = False, True
            if self._rng.random() < self._repeat_fraction:
                repeated = True
                again, _ = await self._send(client, call)
                replay_ok = (
                    again is not None
                    and again.status_code == answer.status_code
                    and again.content == answer.content
                    and again.headers.get(REPLAY_HEADER) == "true"
                )
            report.outcomes.append(Outcome(call, answer.status_code, attempts, repeated, replay_ok))

    async def _send(
        self, client: httpx.AsyncClient, call: ApiCall
    ) -> tuple[httpx.Response | None, int]:
        """The answer (retrying what got none, 5xx, or key in flight) and the attempts."""
        deadline = time.monotonic() + self._retry_for_s
        attempts = 0
        while True:
            attempts += 1
            try:
                answer = await client.request(
                    call.method,
                    call.path,
                    json=call.body,
                    params=call.params,
                    headers={"Idempotency-Key": f'"{call.key}"'},
                )
            except httpx.TransportError:
                answer = None
            if answer is not None and not _retry(answer):
                return answer, attempts
            if time.monotonic() > deadline:
                return answer, attempts
            await asyncio.sleep(RETRY_PAUSE_S)


def _retry(answer: httpx.Response) -> bool:
    if answer.status_code >= 500:
        return True
    return answer.status_code == 409 and b"idempotency-key-in-flight" in answer.content
