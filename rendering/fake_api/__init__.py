"""A fake of the OpenAI Videos API: a real HTTP server, for tests, benchmarks and offline demos."""

from .fal import FakeFalServer as FakeFalServer
from .fal import FalFakeConfig as FalFakeConfig
from .server import FakeConfig, FakeVideoServer
from .vertex import FakeVertexServer as FakeVertexServer
from .vertex import VertexConfig as VertexConfig

__all__ = ["FakeConfig", "FakeVideoServer"]
