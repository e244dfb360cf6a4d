"""What every job of a run shares, and the steps that end or pause one job.

`JobBase` holds one job's place in the run (its step, provider, gate, store and `--timeout`
deadline) and the helpers every phase uses: a bounded pause, a retry wait, and the two ends
of a job for this run, failed or unfinished, each raising `Done` once it is journaled and
emitted. The phases build on it: `submission.py` (the money part) and `retrieval.py` (waiting
for the task and downloading its video); `job.py` runs them in order.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NoReturn

from octobatch import progress as ev
from octobatch.engine.options import EngineOptions
from octobatch.engine.slots import SubmitGate
from octobatch.plan import Step
from octobatch.providers.base import Provider
from octobatch.retry import POLL_CEILING_FACTOR
from octobatch.state import StateStore
from octobatch.transport import ApiError, ConnectionFailed, RateLimited, ServerError

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class Done(Exception):
    """Ends one job's work for this run; its outcome is already journaled and emitted."""


@dataclass
class Reach:
    """Whether this run's provider ever answered. Connection failures before any answer mean
    a wrong base URL or no network at all, not an outage to wait out."""

    threshold: int
    answered: bool = False
    refused: int = 0
    last_refusal: str = ""

    def answer(self) -> None:
        self.answered = True

    def refusal(self, exc: ConnectionFailed) -> bool:
        """Count one; True when the provider now counts as unreachable."""
        self.refused += 1
        self.last_refusal = exc.message
        return self.unreachable

    @property
    def unreachable(self) -> bool:
        return not self.answered and self.refused >= self.threshold


@dataclass
class RunContext:
    """What every job of one run shares."""

    store: StateStore
    options: EngineOptions
    emit: ev.Emit
    sleep: Sleep
    clock: Clock
    rng: random.Random
    reach: Reach
    stopped: set[str] = field(default_factory=set)  # reasons already announced
    output_prefix: str = field(init=False)
    output_abs: str = field(init=False)

    def __post_init__(self) -> None:
        # Where videos go, as the lockfile records it (relative to the lockfile's folder) and
        # as events show it: worked out once per run, not once per video.
        relative = os.path.relpath(self.options.output_dir, self.store.lock_dir)
        self.output_prefix = "" if relative == "." else os.path.join(relative, "")
        self.output_abs = os.path.join(os.path.abspath(self.options.output_dir), "")


class JobBase:
    """One job's place in the run, and the helpers its phases share."""

    def __init__(self, ctx: RunContext, step: Step, provider: Provider,
                 gate: SubmitGate) -> None:
        self.ctx = ctx
        self.step = step
        self.job_id = step.job_id
        self.provider = provider
        self.gate = gate
        self.store = ctx.store
        self.policy = ctx.options.retry
        self.deadline = (None if ctx.options.timeout is None
                         else ctx.clock() + ctx.options.timeout)
        self._waiting_for: str | None = None

    def _stop(self, reason: str) -> None:
        self.gate.stop(reason)
        if reason not in self.ctx.stopped:
            self.ctx.stopped.add(reason)
            self.ctx.emit(ev.SubmissionsStopped(reason=reason))

    async def _retry_wait(self, operation: str, attempt: int, exc: ApiError,
                          task_id: str) -> None:
        retry_after = retry_after_of(exc)
        delay = self.policy.backoff(attempt, self.ctx.rng, retry_after)
        if isinstance(exc, ConnectionFailed):
            # Refused costs the provider nothing: look often enough to notice its return
            # within a few poll intervals, not after a 30 s backoff.
            delay = min(delay, self.ctx.options.poll_interval * POLL_CEILING_FACTOR)
        if isinstance(exc, RateLimited):
            self.ctx.emit(ev.Throttled(job_id=self.job_id, operation=operation,
                                       delay=round(delay, 3), retry_after=retry_after is not None))
        else:
            self.ctx.emit(ev.Retried(job_id=self.job_id, operation=operation, attempt=attempt,
                                     delay=round(delay, 3), reason=str(exc)))
        await self._pause(delay, task_id)

    async def _pause(self, delay: float, task_id: str | None = None) -> None:
        """Sleep `delay`, but not past the job's --timeout (which then ends the job)."""
        if self.deadline is not None:
            remaining = self.deadline - self.ctx.clock()
            if task_id is not None and remaining <= 0:
                self._check_timeout(task_id, self.ctx.clock())
            delay = min(delay, max(remaining, 0.0))
        await self.ctx.sleep(delay)

    def _check_timeout(self, task_id: str, now: float) -> None:
        if self.deadline is not None and now >= self.deadline:
            self._fail(task_id, "timeout",
                       f"not finished after {self.ctx.options.timeout:g} s (--timeout); the "
                       "task id is kept: `--retry-failed` checks it before resubmitting")

    def _fail(self, task_id: str | None, code: str, message: str) -> NoReturn:
        self.store.failed(self.job_id, code, message)
        self.ctx.emit(ev.Failed(job_id=self.job_id, task_id=task_id, code=code, message=message))
        raise Done

    def _unfinished(self, task_id: str | None, reason: str) -> NoReturn:
        self.ctx.emit(ev.Unfinished(job_id=self.job_id, task_id=task_id, reason=reason))
        raise Done


def retry_after_of(exc: ApiError) -> float | None:
    return exc.retry_after if isinstance(exc, (RateLimited, ServerError)) else None


_stamp: tuple[int, str] = (-1, "")  # the last second formatted: many jobs share one


def now_iso() -> str:
    global _stamp
    second = int(time.time())
    if second != _stamp[0]:
        text = datetime.fromtimestamp(second, timezone.utc).isoformat(timespec="seconds")
        _stamp = (second, text.replace("+00:00", "Z"))
    return _stamp[1]
