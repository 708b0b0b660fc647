"""Built-in strategies; importing this package registers them."""

from . import even, llm, manual, sentences  # noqa: F401
