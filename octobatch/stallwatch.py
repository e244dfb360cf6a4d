"""Cutting a download body that goes silent, with one timer per quiet stretch.

aiohttp's `sock_read` timeout re-arms a timer on every read from the socket: a dozen per
megabyte, which over thousands of downloads is a measurable share of the event loop. For a
body, a `StallWatch` takes over once the headers are in: each chunk only notes the time, and
its one timer, when due, either re-arms for the time still left or cuts the transfer (the
reader gets `asyncio.TimeoutError`, as with `sock_read`). Time the reader spends on its own
disk work (`busy`) is not the server's silence: aiohttp stops `sock_read` then too, once
unread bytes pile up. The same timer cuts the body at the download's `deadline`, if it has one.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp


class StallWatch:
    """Watches `resp`'s body from now on; `close()` it when the body is in or given up."""

    def __init__(self, resp: aiohttp.ClientResponse, seconds: float,
                 deadline: float | None = None) -> None:
        self._content = resp.content
        self._seconds = seconds
        self._deadline = deadline  # loop time by which the body must be in, if any
        self._loop = asyncio.get_running_loop()
        self.busy = False  # the reader is writing what came: its own time, not silence
        connection = resp.connection
        if connection is not None and connection.protocol is not None:
            # The request's sock_read covered the wait for the headers; the body is ours.
            # (A connection already let go holds no more body to wait for; an aiohttp
            # without this setter keeps its own timer too, which is only slower.)
            with contextlib.suppress(AttributeError):
                connection.protocol.read_timeout = None
        self._last = self._loop.time()
        self._timer = self._loop.call_at(self._due(), self._check)

    def arrived(self) -> None:
        """A chunk came (or the reader is back from its disk work): the silence starts now."""
        self._last = self._loop.time()

    def close(self) -> None:
        self._timer.cancel()

    def _check(self) -> None:
        now = self._loop.time()
        if self.busy:
            self._last = now
        due = self._due()
        if now < due:
            self._timer = self._loop.call_at(due, self._check)
            return
        self._content.set_exception(asyncio.TimeoutError())

    def _due(self) -> float:
        due = self._last + self._seconds
        return due if self._deadline is None else min(due, self._deadline)
