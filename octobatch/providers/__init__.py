"""Video providers: the protocol the engine talks to, the registry, the built-in dialects.

    async with connect(base_url, api_key) as provider:    # one provider, its own transport
        video = await provider.submit(request, idempotency_key)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from octobatch.providers.base import (
    DEFAULT_PROVIDER,
    PROVIDERS,
    Provider,
    ProviderFactory,
    Providers,
    TaskState,
    VideoStatus,
)
from octobatch.providers.octopusx import OctopusX
from octobatch.providers.seedance2 import Seedance2
from octobatch.retry import DEFAULT_CONCURRENCY
from octobatch.transport import Transport

PROVIDERS.setdefault(OctopusX.name, OctopusX)
PROVIDERS.setdefault(Seedance2.name, Seedance2)

__all__ = ["DEFAULT_PROVIDER", "PROVIDERS", "OctopusX", "Provider", "ProviderFactory",
           "Providers", "Seedance2", "TaskState", "VideoStatus", "connect"]


@asynccontextmanager
async def connect(base_url: str, api_key: str, *, provider: str = DEFAULT_PROVIDER,
                  concurrency: int = DEFAULT_CONCURRENCY) -> AsyncIterator[Provider]:
    """One provider over a transport of its own, closed on exit."""
    async with Transport(base_url, api_key, concurrency=concurrency) as transport:
        yield Providers(transport).get(provider)
