"""The engine's pure decisions: what a submission's answer means, the submission gate, the
breaker's half-open cycle. No network; a hand-wound clock."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from octobatch.engine.decisions import Created, Then, submit_verdict
from octobatch.engine.slots import Stopped, SubmitGate
from octobatch.retry import CircuitBreaker, RetryPolicy
from octobatch.transport import (
    Ambiguous,
    ApiError,
    AuthError,
    BadRequest,
    ConnectionFailed,
    RateLimited,
    ServerError,
    TaskNotFound,
    Timeout,
)


@pytest.mark.parametrize(("error", "created", "then", "failure"), [
    (None, Created.YES, Then.RECORD, None),
    (RateLimited("x", retry_after=None, slot_limit=True), Created.NO, Then.WAIT_FOR_SLOT, None),
    (RateLimited("x", retry_after=3.0), Created.NO, Then.PAUSE_KEY, None),
    (RateLimited("x", retry_after=None), Created.NO, Then.PAUSE_KEY, None),
    (ConnectionFailed("refused"), Created.NO, Then.WAIT_OUT_OUTAGE, "connection failures"),
    (AuthError("k", status=401, cause="key"), Created.NO, Then.STOP, None),
    (AuthError("b", status=403, cause="balance"), Created.NO, Then.STOP, None),
    (BadRequest("bad", status=400), Created.NO, Then.FAIL, None),
    (TaskNotFound("gone", status=404), Created.NO, Then.FAIL, None),
    (ServerError("5xx", status=503), Created.MAYBE, Then.RETRY_SAME_KEY, "server errors"),
    (Ambiguous("dropped"), Created.MAYBE, Then.RETRY_SAME_KEY, "dropped connections"),
    (Timeout("slow"), Created.MAYBE, Then.RETRY_SAME_KEY, "dropped connections"),
    (ApiError("odd"), Created.MAYBE, Then.RETRY_SAME_KEY, "unreadable answers"),
], ids=lambda v: type(v).__name__ if isinstance(v, (ApiError, type(None))) else str(v))
def test_what_each_submit_answer_means(error: ApiError | None, created: Created, then: Then,
                                       failure: str | None) -> None:
    verdict = submit_verdict(error)
    assert (verdict.created, verdict.then, verdict.failure) == (created, then, failure)
    assert verdict.nothing_created is (created is Created.NO)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


POLICY = RetryPolicy(base=0.001, cap=0.002, slot_probe_after=10.0, breaker_threshold=2,
                     breaker_cooldown=1.0, breaker_cooldown_cap=3.0)


async def admit_now(gate: SubmitGate) -> bool:
    """Whether the gate admits a submission without waiting."""
    try:
        await asyncio.wait_for(gate.admit(), 0.05)
    except asyncio.TimeoutError:
        return False
    return True


async def test_gate_learns_the_limit_holds_it_and_probes_up_after_a_clean_stretch() -> None:
    clock = Clock()
    gate = SubmitGate(ceiling=6, policy=POLICY, clock=clock, rng=random.Random(1))
    for _ in range(4):
        assert await admit_now(gate)
        gate.created()
    assert await admit_now(gate)
    gate.not_created(answered=True)
    assert gate.slot_refused() == 4 and gate.blocked_by() == "provider_slot"
    assert not await admit_now(gate)  # held to 4 while 4 are unfinished
    gate.task_finished()
    assert gate.blocked_by() is None and await admit_now(gate)  # a freed slot: at once
    gate.created()
    clock.now = 10.0  # a clean stretch at the limit: one more is tried
    assert await admit_now(gate) and gate.limit == 5
    gate.created()
    assert not await admit_now(gate)  # and the next stretch starts now
    clock.now += 10.0
    assert await admit_now(gate) and gate.limit == 6
    gate.created()
    clock.now += 100.0
    assert not await admit_now(gate)  # never above --concurrency


async def test_gate_pauses_the_whole_key_on_retry_after() -> None:
    clock = Clock()
    gate = SubmitGate(ceiling=4, policy=POLICY, clock=clock, rng=random.Random(1))
    assert gate.pause(5.0) == 5.0 and gate.blocked_by() == "rate_limit"
    clock.now = 5.0
    assert gate.blocked_by() is None and await admit_now(gate)


async def test_gate_stops_its_waiters_when_submissions_stop() -> None:
    gate = SubmitGate(ceiling=1, policy=POLICY, clock=Clock(), rng=random.Random(1))
    assert await admit_now(gate)
    gate.created()
    gate.slot_refused()
    waiter = asyncio.create_task(gate.admit())
    await asyncio.sleep(0.01)
    gate.stop("the API key was rejected")
    with pytest.raises(Stopped, match="rejected"):
        await asyncio.wait_for(waiter, 1)


def test_breaker_half_opens_after_a_growing_capped_cooldown_and_closes_on_success() -> None:
    breaker = CircuitBreaker(2, cooldown=1.0, cooldown_cap=3.0)
    assert not breaker.failure("connection failures", "connection failures", now=0.0)
    assert breaker.failure("connection failures", "connection failures", now=0.0)
    assert breaker.wait(0.5) == 0.5  # cooling down
    assert breaker.wait(1.0) == 0.0 and breaker.probing  # the probe goes
    assert breaker.wait(1.0) is None  # everyone else waits for its outcome
    assert breaker.failure("connection failures", "connection failures", now=1.0)  # reopened
    assert breaker.cooldown == 2.0 and breaker.wait(2.0) == 1.0
    assert breaker.wait(3.0) == 0.0
    breaker.failure("connection failures", "connection failures", now=3.0)
    assert breaker.cooldown == 3.0  # capped
    breaker.provider_back(now=4.0)  # a poll got through: probe at once
    assert breaker.wait(4.0) == 0.0
    breaker.success()
    assert not breaker.is_open and breaker.wait(4.0) == 0.0 and breaker.cooldown == 1.0


def test_breaker_stop_is_for_good() -> None:
    breaker = CircuitBreaker(5)
    breaker.trip("the API key was rejected")
    breaker.success()
    assert breaker.stopped and breaker.wait(1e9) == float("inf")


async def test_a_job_timeout_landing_with_the_gate_s_own_wait_leaves_the_gate_sound() -> None:
    # A paused key: every admission waits on a timer; the job's --timeout (the outer wait)
    # ends at the same moment. On Python 3.11 a Condition waited on with a nested wait_for
    # came out of this with its lock released under its holder ("Lock is not acquired").
    gate = SubmitGate(ceiling=4, policy=POLICY, clock=time.monotonic, rng=random.Random(1))
    for _ in range(40):
        gate.pause(0.002)
        waits = [asyncio.wait_for(gate.admit(), 0.002) for _ in range(8)]
        # Bounded: the old gate could also end up with its lock held by no one, forever.
        outcomes = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 10)
        for outcome in outcomes:
            assert outcome is None or isinstance(outcome, asyncio.TimeoutError), outcome
        gate.posting = 0
    await asyncio.sleep(0.003)  # the last pause is over: the gate admits at once
    await asyncio.wait_for(gate.admit(), 1)
    assert gate.posting == 1
