"""The gate every submission of one key passes: learned task limit, key-wide pauses, breaker.

Providers allow a key only so many unfinished tasks and answer one more with a 429
(`token_concurrency_limit_reached`). The gate learns that limit from the answers (a refusal
while N of our tasks are unfinished means the limit is about N), holds submissions to it, and
after a clean stretch lets one more through to find out whether the limit went up. A slot
freed by a task seen finished goes to the next waiting job at once. Polls and downloads never
pass the gate: only new tasks count against the limit.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

from octobatch.retry import CircuitBreaker, RetryPolicy

Clock = Callable[[], float]


class Stopped(Exception):
    """Submissions of this key are stopped for the rest of the run (the reason is the text)."""


class SubmitGate:
    """Admission of new submissions for one key (one provider over one transport)."""

    def __init__(self, ceiling: int, policy: RetryPolicy, clock: Clock,
                 rng: random.Random) -> None:
        self.ceiling = ceiling  # --concurrency: the limit is never probed above it
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self.breaker = CircuitBreaker(policy.breaker_threshold, cooldown=policy.breaker_cooldown,
                                      cooldown_cap=policy.breaker_cooldown_cap)
        self.limit: int | None = None  # learned; None until the provider says so
        self.unfinished = 0  # our tasks the provider still counts against the key
        self.posting = 0  # submissions on the wire
        self.refusals = 0  # 429s for the limit, over the run
        self._last_refusal = -math.inf
        self._paused_until = -math.inf
        self._throttles = 0  # consecutive key-wide pauses, for their backoff
        # Admissions waiting for a change, oldest first. No Condition and no nested
        # wait_for: on Python 3.11 a cancellation during wait_for's own cancellation of
        # Condition.wait() left the lock released under its holder.
        self._waiters: dict[asyncio.Future[None], None] = {}

    # -- admission --

    def blocked_by(self) -> str | None:
        """What a submission would wait for now: "outage", "rate_limit", "provider_slot"."""
        now = self._clock()
        if self.breaker.is_open or self.breaker.stopped:
            return "outage"
        if now < self._paused_until:
            return "rate_limit"
        if self._at_limit(now, probe=False):
            return "provider_slot"
        return None

    async def admit(self) -> None:
        """Wait until one more submission may go. Afterwards exactly one of `created`,
        `not_created` or `abandoned` reports what became of it. Raises `Stopped`."""
        while True:
            if self.breaker.stopped is not None:
                raise Stopped(self.breaker.stopped)
            delay = self._wait_for(self._clock())
            if delay == 0:
                self.posting += 1  # no await since the check: no one else got in between
                return
            await self._change(None if delay is None else max(delay, 0.001))

    async def _change(self, timeout: float | None) -> None:
        """Until something changes (a slot frees, a pause ends, ...) or `timeout` passes."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters[waiter] = None
        timer = None if timeout is None else loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            self._waiters.pop(waiter, None)
            if timer is not None:
                timer.cancel()

    def _wait_for(self, now: float) -> float | None:
        breaker = self.breaker.wait(now)
        if breaker != 0:
            return breaker  # None: wait for the probe's outcome
        if now < self._paused_until:
            if self.breaker.probing:
                self.breaker.probe_abandoned()
            return self._paused_until - now
        if self._at_limit(now, probe=True):
            if self.breaker.probing:
                self.breaker.probe_abandoned()
            # Nothing of ours will free a slot: the key's other users hold them. Look again.
            return None if self.unfinished or self.posting else self._backoff()
        return 0.0

    def _at_limit(self, now: float, *, probe: bool) -> bool:
        if self.limit is None or self.unfinished + self.posting < self.limit:
            return False
        clean = now - self._last_refusal >= self._policy.slot_probe_after
        if probe and clean and self.limit < self.ceiling and not self.posting:
            # A clean stretch at the limit: try one more. A refusal sets it back.
            self.limit += 1
            self._last_refusal = now
            return False
        return True

    def _backoff(self) -> float:
        self._throttles += 1
        return self._policy.backoff(self._throttles, self._rng)

    # -- outcomes --

    def created(self) -> None:
        """The submission made a task: it holds a slot until it is seen finished."""
        self.posting -= 1
        self.unfinished += 1
        self._throttles = 0
        self.breaker.success()
        self._notify()

    def not_created(self, *, answered: bool) -> None:
        """The submission made nothing (refused, throttled, invalid) or may have (uncertain)."""
        self.posting -= 1
        if answered:
            self.breaker.success()  # the provider is there and answering
        self._notify()

    def abandoned(self) -> None:
        """The submission never went out (cancelled while admitted)."""
        self.posting -= 1
        self.breaker.probe_abandoned()
        self._notify()

    def slot_refused(self) -> int:
        """A 429 for the key's task limit: learn it (the caller already called not_created)."""
        self.refusals += 1
        self._last_refusal = self._clock()
        self.limit = max(1, min(self.unfinished + self.posting, self.ceiling))
        return self.limit

    def pause(self, seconds: float | None) -> float:
        """A rate-limit 429: every submission of the key waits `seconds` (else a backoff)."""
        delay = self._backoff() if seconds is None else seconds
        self._paused_until = max(self._paused_until, self._clock() + delay)
        return delay

    def provider_answered(self) -> None:
        """A poll or download got an answer: an outage may be over, so let a probe go now."""
        if self.breaker.is_open:
            self.breaker.provider_back(self._clock())
            self._notify()

    def stop(self, reason: str) -> None:
        """No further submission of this key in this run (401/403, an unreachable API)."""
        self.breaker.trip(reason)
        self._notify()

    def known_task(self) -> None:
        """A task from an earlier run is being waited for: it holds a slot too."""
        self.unfinished += 1

    def task_finished(self) -> None:
        """A task was seen completed or failed (or is no longer waited for): free its slot."""
        self.unfinished -= 1
        self._notify()

    def _notify(self) -> None:
        """Let every waiting admission look again, oldest first (plain code may call it)."""
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters:
            _settle(waiter)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
