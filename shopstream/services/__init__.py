"""The shop's own services: an HTTP API for products, carts and orders that checks each
command against the service's own tables and publishes through a transactional outbox.

:mod:`.api` (FastAPI routes) → :mod:`.commands` (checks and state changes) →
:mod:`.transactions` (one transaction: idempotency key, state change, outbox rows) →
:mod:`.relay` (publishes pending outbox rows to Kafka and marks them sent).
:mod:`.server` runs ``serve`` and ``relay``; :mod:`.api_client` drives the API with the
simulator's shoppers (``simulate --via-api``). See docs/services.md.
"""
