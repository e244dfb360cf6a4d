"""What the engine needs from a video provider, and the registry of providers by name.

A provider is one dialect of "submit a job, poll its task, download the result": its routes,
status words, error bodies and result-URL locations. It speaks through the shared `Transport`
(pooling, bounded reads, key scrubbing, the same-origin rule) and answers with the normalised
records below, so the engine never sees a provider's own vocabulary. A model file names the
provider that serves it (`x-octobatch.provider`, default "octopusx").
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from octobatch.errors import OctobatchError
from octobatch.jobs import ApiRequest
from octobatch.transport import ApiError, Downloaded, Finish, Transport

DEFAULT_PROVIDER = "octopusx"


class TaskState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"  # a status word we have not seen documented: surfaced, not terminal


@dataclass(frozen=True)
class VideoStatus:
    """The provider's video object, normalised."""

    task_id: str
    state: TaskState
    status_word: str  # as the provider wrote it, for messages
    progress: int | None
    video_url: str | None  # absolute; set once completed
    error: Mapping[str, str] | None  # {"code", "message"} once failed


class Provider(Protocol):
    """One provider's dialect over a shared transport."""

    name: str

    async def submit(self, request: ApiRequest, idempotency_key: str) -> VideoStatus:
        """Create a task. Raises `ConnectionFailed`/`RateLimited` only when nothing was made."""
        ...

    async def poll(self, task_id: str) -> VideoStatus:
        ...

    def content_url(self, task_id: str) -> str:
        """Where the result is when the task's answer names no URL."""
        ...

    async def download(self, url: str, dest: Path, then: Finish | None = None) -> Downloaded:
        """Fetch the result into `dest` (resuming what an earlier call left there); `then`,
        when given, runs in the file threads once the whole file is there (see
        `transport.Finish`), before this returns."""
        ...

    def read_video(self, data: Mapping[str, Any], fallback_id: str | None) -> VideoStatus:
        """A task answer (status word, progress, result location, error) normalised."""
        ...

    def read_error(self, status: int, body: str, retry_after: str | None) -> ApiError:
        """An HTTP error answer as the typed error that says what a retry would risk."""
        ...


ProviderFactory = Callable[[Transport], Provider]


class ProviderSource(Protocol):
    """Providers by name (the engine asks for the one each job's model names)."""

    def get(self, name: str) -> Provider:
        ...


# Provider name -> factory. `octobatch.providers` registers the built-in ones; a new dialect is
# one module plus one entry here.
PROVIDERS: dict[str, ProviderFactory] = {}


class Providers:
    """The providers of one run, made on first use, all over one transport."""

    def __init__(self, transport: Transport,
                 registry: Mapping[str, ProviderFactory] | None = None) -> None:
        self.transport = transport
        self._registry = PROVIDERS if registry is None else registry
        self._made: dict[str, Provider] = {}

    def get(self, name: str) -> Provider:
        provider = self._made.get(name)
        if provider is None:
            factory = self._registry.get(name)
            if factory is None:
                known = ", ".join(sorted(self._registry)) or "none"
                raise OctobatchError(f"unknown provider {name!r} (known: {known}); check the "
                                     "model file's x-octobatch.provider")
            provider = self._made[name] = factory(self.transport)
        return provider


def parse_progress(value: object) -> int | None:
    """0-100 from an int, float, "50" or "50%"; None when absent, unreadable or not finite."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, (int, float)):
            number = float(value)
        else:
            number = float(str(value).strip().rstrip("%"))
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return max(0, min(100, int(number)))


def text(value: object) -> str:
    """A provider's scalar as stripped text ('' for null); containers are not text."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()
