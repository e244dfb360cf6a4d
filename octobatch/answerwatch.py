"""Bounding how long API answers take, with one timer for all the requests in flight.

aiohttp's `sock_read` arms a timer once a request is sent and re-arms it on every read: two or
three timers per poll, which over thousands of jobs is a measurable share of the event loop
(about 4% of its time in the engine benchmark: each timer is a Python object on a heap). An API
answer is small, so bounding the whole request is as good as bounding its silences. A request
only notes its task and when it began; the watch's one timer, due when the oldest request runs
out, cancels the tasks of the requests past the limit and re-arms for the next. A request
runs inside `watching()`, which turns that cancellation into `TimeoutError`, unless something
else cancelled its task as well (Ctrl-C goes on as a cancellation).
"""

from __future__ import annotations

import asyncio
import sys
from types import TracebackType
from typing import Any

Task = asyncio.Task[Any]


class AnswerWatch:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        # each request's task -> (loop time it began, its pending cancellations then); oldest
        # first. A task waits for one answer at a time.
        self._began: dict[Task, tuple[float, int]] = {}
        self._cut: dict[Task, int] = {}  # tasks cancelled here -> their pending cancellations
        self._timer: asyncio.TimerHandle | None = None

    def watching(self) -> Watched:
        """The context one request runs in (a plain `with`: no await to enter or leave)."""
        return Watched(self)

    def start(self) -> Task:
        """Watch the current task's request from now on; `end()` it when the request ends."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("an API request outside a task")
        loop = task.get_loop()
        now = loop.time()
        self._began[task] = (now, _cancelling(task))
        if self._timer is None:
            self._timer = loop.call_at(now + self.seconds, self._expire)
        return task

    def end(self, task: Task) -> None:
        self._began.pop(task, None)
        self._cut.pop(task, None)

    def timed_out(self, task: Task) -> bool:
        """Whether a cancellation that reached `task`'s request is the watch's cut alone."""
        pending = self._cut.pop(task, None)
        if pending is None:
            return False
        if sys.version_info >= (3, 11):
            return task.uncancel() <= pending  # more: someone else cancelled it too
        return True

    def _expire(self) -> None:
        self._timer = None
        while self._began:
            task, (began, pending) = next(iter(self._began.items()))
            loop = task.get_loop()
            now = loop.time()
            if began + self.seconds > now:
                self._timer = loop.call_at(began + self.seconds, self._expire)
                return
            del self._began[task]
            self._cut[task] = pending
            task.cancel()


class Watched:
    """One request inside an `AnswerWatch` (or inside none: `Watched(None)`)."""

    __slots__ = ("_watch", "_task")

    def __init__(self, watch: AnswerWatch | None) -> None:
        self._watch = watch
        self._task: Task | None = None

    def __enter__(self) -> Watched:
        if self._watch is not None:
            self._task = self._watch.start()
        return self

    def done(self) -> None:
        """The answer came (its headers, say): what follows is not the watch's."""
        if self._watch is not None and self._task is not None:
            self._watch.end(self._task)
            self._task = None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        task, self._task = self._task, None
        if self._watch is None or task is None:
            return
        cut = kind is asyncio.CancelledError and self._watch.timed_out(task)
        self._watch.end(task)
        if cut:
            raise asyncio.TimeoutError from None


def _cancelling(task: Task) -> int:
    if sys.version_info >= (3, 11):
        return task.cancelling()
    return 0  # Python 3.10 does not count them
