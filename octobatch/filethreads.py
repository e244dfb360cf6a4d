"""A few threads for file work (writes, hashes, fsyncs, renames), called from the event loop.

Lighter than `loop.run_in_executor` for the many small calls each download makes: a call is
one put on a `queue.SimpleQueue` and one `call_soon_threadsafe` back, with no
`concurrent.futures.Future` (and its lock and condition) in between. Measured: 27 against
70 microseconds of event-loop time per call, and the event loop is what a run of thousands
of jobs waits on.

Like an executor's: work whose future was cancelled before a thread took it up does not run;
`close()` lets the threads finish what is queued, then end; a thread idle for `linger`
seconds ends (so a pool nobody closed never keeps the interpreter from exiting for long),
and another starts when work comes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any],
              asyncio.AbstractEventLoop]


class FileThreads:
    def __init__(self, count: int, name: str, *, linger: float = 5.0) -> None:
        self._count = count
        self._name = name
        self._linger = linger
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _alive and _closed
        self._alive = 0
        self._started = 0  # for thread names
        self._closed = False

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`function(*args)` in a file thread; the future (on the running loop) gets its
        result or exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: used after close()")
            self._queue.put((function, args, future, loop))
            if self._alive < self._count:
                self._alive += 1
                self._started += 1
                threading.Thread(target=self._work, name=f"{self._name}_{self._started}",
                                 daemon=False).start()
        return future

    def close(self) -> None:
        """No new work; the threads end once what is queued is done (not waited for)."""
        with self._lock:
            self._closed = True
            for _ in range(self._alive):
                self._queue.put(None)

    def _work(self) -> None:
        while True:
            try:
                work = self._queue.get(timeout=self._linger)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():  # else work came just now: take it up
                        self._alive -= 1
                        return
                continue
            if work is None:
                return  # closed (the count no longer matters)
            function, args, future, loop = work
            if future.cancelled():  # its caller gave up before it started
                continue
            try:
                result = function(*args)
            except BaseException as exc:  # noqa: BLE001 -- the caller gets whatever it was
                _deliver(loop, future, None, exc)
            else:
                _deliver(loop, future, result, None)
            del work, function, args, future  # no reference kept while waiting for more


def _deliver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any,
             error: BaseException | None) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, result, error)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
