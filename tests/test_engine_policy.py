"""The retry policy, poll pacing and circuit breaker: pure functions, no clock, no network."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from octobatch.retry import (
    POLL_CEILING_FACTOR,
    POLL_FLOOR_FACTOR,
    CircuitBreaker,
    PollPacer,
    RetryPolicy,
    next_poll_delay,
    parse_retry_after,
)


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # the whole range is used, not just the ceiling


def test_backoff_after_a_night_of_retries_stays_at_the_cap() -> None:
    # Patient waits retry for as long as the run goes on: attempt 5,000 must not overflow.
    assert 0.0 <= RetryPolicy(base=0.5, cap=30.0).backoff(5000, random.Random(1)) <= 30.0


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(retry_after_cap=60.0)
    assert policy.backoff(1, random.Random(), retry_after=12.0) == 12.0
    assert policy.backoff(1, random.Random(), retry_after=3600.0) == 60.0


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    # Not delays at all: a NaN would reach --json as invalid JSON, infinity would wait forever.
    for garbled in ("nan", "NaN", "inf", "-inf", "Infinity", "1e999"):
        assert parse_retry_after(garbled, now) is None, garbled


@pytest.mark.parametrize(("remaining", "expected"), [
    (None, 5.0),  # no estimate: the configured interval
    (0.01, 5.0 * POLL_FLOOR_FACTOR),  # end is near: never more often than the floor
    (3.0, 3.0),  # aim at the predicted end
    (1e6, 5.0 * POLL_CEILING_FACTOR),  # far away: sparse, but bounded
])
def test_poll_delay_bounds(remaining: float | None, expected: float) -> None:
    assert next_poll_delay(5.0, remaining) == pytest.approx(expected)


def test_pacer_aims_at_the_predicted_end() -> None:
    pacer = PollPacer(5.0, now=0.0, fresh=True)
    assert pacer.first_delay() == 5.0
    # 25% after 10 s of a task that gains 2.5%/s: 30 s to go, capped at the ceiling (20 s).
    assert pacer.next_delay(10.0, 25) == 20.0
    assert pacer.next_delay(30.0, 75) == pytest.approx(10.0)
    resumed = PollPacer(5.0, now=100.0, fresh=False)
    assert resumed.first_delay() == 0.0
    assert resumed.next_delay(100.0, 60) == 5.0  # one sample is no rate yet
    assert resumed.next_delay(104.0, 80) == pytest.approx(4.0)


def test_breaker_opens_on_repeated_failures_of_one_kind() -> None:
    breaker = CircuitBreaker(3)
    assert not breaker.failure("server_errors", "server errors")
    assert not breaker.failure("dropped_connections", "dropped connections")  # a new kind
    breaker.success()
    assert not breaker.failure("server_errors", "server errors")
    assert not breaker.failure("server_errors", "server errors")
    assert breaker.failure("server_errors", "server errors")
    assert breaker.is_open and "3 submissions in a row failed" in (breaker.open_reason or "")
    breaker.trip("other")  # the first reason is kept
    assert "server errors" in (breaker.open_reason or "")
