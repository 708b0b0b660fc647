"""Built-in strategies; importing this package registers them."""

from . import even, manual, sentences  # noqa: F401
