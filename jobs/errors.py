"""Errors raised by services. Views map them: InvalidInput -> 400, IllegalTransition -> 409."""

from __future__ import annotations


class ServiceError(Exception):
    pass


class InvalidInput(ServiceError):
    """Bad input, with messages per field (the same shape as a DRF ValidationError's detail)."""

    def __init__(self, errors: dict[str, list[str]] | str, *, field: str = "non_field_errors") -> None:
        if isinstance(errors, str):
            errors = {field: [errors]}
        self.errors = errors
        super().__init__("; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items()))


class IllegalTransition(ServiceError):
    """A state change that the object's current state does not allow."""


class NotFound(ServiceError):
    pass
