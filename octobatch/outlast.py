"""Work a cancellation must not cut short: it finishes, then the cancellation goes on; and
work left to finish on its own, whose outcome nobody awaits."""

from __future__ import annotations

import asyncio
import functools
from typing import TypeVar

T = TypeVar("T")


async def outlast_cancellation(task: asyncio.Future[T]) -> T:
    """The result of `task` (a task or any future), which is left to finish even if the
    caller is cancelled meanwhile.

    A submission's answer may be a paid task id: abandoning it on Ctrl-C would make the next
    run pay again, so the POST and its journal record complete first (the transport's
    timeouts bound the wait) and the cancellation is re-raised after. Likewise a video moved
    into place is journaled before the cancellation goes on, and the last write of a video,
    which also moves it into place, is not abandoned halfway. A second Ctrl-C still exits at
    once.
    """
    cancelled = False
    while not task.done():
        # A future of our own to wait on (asyncio.wait's sets and closures cost more, and
        # this runs for every submission and every video).
        waiter = asyncio.get_running_loop().create_future()
        task.add_done_callback(functools.partial(_wake, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: whatever it was, the rerun deals with the job
        raise asyncio.CancelledError
    return task.result()


def _wake(waiter: asyncio.Future[None], _: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


def retrieved(future: asyncio.Future[T]) -> None:
    """A done-callback for a future left to finish on its own: its exception is taken, so
    asyncio does not report it as never retrieved (the caller says why that is safe)."""
    if not future.cancelled():
        future.exception()
