"""The file threads' bridge from the event loop: results, errors, cancellation, close, linger."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from octobatch.filethreads import FileThreads


def names(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def test_results_and_errors_come_back_to_the_awaiting_task() -> None:
    threads = FileThreads(2, "ft-results")
    assert await threads.run(sum, [1, 2, 3]) == 6
    assert await threads.run(threading.current_thread) is not threading.current_thread()

    def fail() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        await threads.run(fail)
    threads.close()


async def test_work_cancelled_before_a_thread_takes_it_up_never_runs() -> None:
    threads = FileThreads(1, "ft-cancel")
    release, ran = threading.Event(), list[str]()
    blocker = threads.run(release.wait, 10)
    await eventually(lambda: len(names("ft-cancel")) == 1)
    skipped = threads.run(ran.append, "skipped")
    skipped.cancel()
    kept = threads.run(ran.append, "kept")
    release.set()
    assert await blocker is True
    await kept
    assert ran == ["kept"]
    threads.close()


async def test_close_lets_queued_work_finish_then_the_threads_end() -> None:
    threads = FileThreads(1, "ft-close")
    release, ran = threading.Event(), list[str]()
    threads.run(release.wait, 10)
    threads.run(ran.append, "queued before close")
    threads.close()
    with pytest.raises(RuntimeError, match="after close"):
        threads.run(ran.append, "too late")
    release.set()
    await eventually(lambda: not names("ft-close"))
    assert ran == ["queued before close"]


async def test_idle_threads_end_and_new_work_starts_another() -> None:
    threads = FileThreads(2, "ft-linger", linger=0.05)
    assert await threads.run(len, "abc") == 3
    await eventually(lambda: not names("ft-linger"))
    assert await threads.run(len, "abcd") == 4  # a thread started again
    threads.close()
    await eventually(lambda: not names("ft-linger"))
