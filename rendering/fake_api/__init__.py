"""A fake of the OpenAI Videos API: a real HTTP server, for tests, benchmarks and offline demos."""

from .server import FakeConfig, FakeVideoServer

__all__ = ["FakeConfig", "FakeVideoServer"]
