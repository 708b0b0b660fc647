"""Exactly-once POSTs for API clients: the `Idempotency-Key` header (see idempotency.decorators)."""
