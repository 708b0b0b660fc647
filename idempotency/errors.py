"""The refusals of a request carrying an Idempotency-Key, as DRF errors so they reach the client in the
API's JSON error shape (jobs.api.exceptions)."""

from __future__ import annotations

from rest_framework import exceptions, status

HEADER = "Idempotency-Key"


class KeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        f"This {HEADER} was already used with a different request (method, path or body); "
        "use a new key for a new request."
    )
    default_code = "idempotency_key_reused"


class KeyInProgress(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = (
        f"A request with this {HEADER} is still being processed; retry after it has finished "
        "to get its answer."
    )
    default_code = "idempotency_key_in_progress"
    # DRF's handler turns this into a Retry-After header: the first request usually answers in seconds.
    wait = 1
