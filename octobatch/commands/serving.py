"""What the commands that serve until Ctrl-C share (`review`, `simulate`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable
from typing import TypeVar

from octobatch.errors import UsageError

T = TypeVar("T")


async def listening(start: Awaitable[T], host: str, port: int) -> T:
    """`await start` (a server binding `host:port`); a port that cannot be had is a usage
    error that says what to do."""
    try:
        return await start
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                         "choose another --port (0 picks a free one)") from None


def stop_requested() -> asyncio.Event:
    """An event that Ctrl-C or SIGTERM (a service manager's stop) sets. Made before the
    command says it is ready, so a signal sent at once is handled, not fatal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
