"""The one retry policy: every delay, bound and threshold of the run engine lives here.

Backoff is exponential with full jitter (a random delay between 0 and the capped exponential),
which spreads a herd of clients that were all throttled at the same moment. A server's
`Retry-After` always wins over our own estimate.
"""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone

# Run defaults (a flag wins over the manifest's `settings:`, which wins over these).
DEFAULT_CONCURRENCY = 8
DEFAULT_POLL_INTERVAL = 5.0  # the provider suggests polling every 5-10 s

# An ambiguous submission (timeout, 5xx, dropped connection after sending) may have created a
# paid task; it is repeated with the same Idempotency-Key at most this many times in total.
UNCERTAIN_ATTEMPTS = 3
# Download failures that are not the network's fault (the URL keeps being refused after fresh
# polls, the content is wrong) before the job is left unfinished with its task id. Network
# trouble (refused, dropped, 5xx, 429, cut transfers) is retried as long as the run goes on.
DOWNLOAD_ATTEMPTS = 6
# Consecutive submission failures of one kind (across all jobs) that open the breaker.
BREAKER_THRESHOLD = 5
# The open breaker lets one probe submission through after a cool-down that doubles with each
# failed probe, up to the cap; a successful probe closes it.
BREAKER_COOLDOWN = 5.0
BREAKER_COOLDOWN_CAP = 300.0
# A learned per-key task limit is probed one higher after this long without meeting it.
SLOT_PROBE_AFTER = 60.0
# Polls of a task that keeps reporting a status word we do not know, before giving up on it.
UNKNOWN_STATUS_POLLS = 20
# `task_not_exist` fails a task only when it persists: this many answers in a row spanning at
# least this many seconds (a provider's database may lag just after the submission).
TASK_NOT_FOUND_POLLS = 3
TASK_NOT_FOUND_WINDOW = 60.0

BACKOFF_BASE = 0.5  # seconds
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 300.0  # never sleep longer than this on a server's say-so

# Adaptive polling, as multiples of the configured poll interval.
POLL_FLOOR_FACTOR = 0.2  # never poll one task more often than this
POLL_CEILING_FACTOR = 4.0  # never leave a running task unpolled longer than this
POLL_JITTER = 0.1  # +-10% so that tasks submitted together do not poll in lockstep


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters; tests pass tiny values so nothing waits on the wall clock."""

    base: float = BACKOFF_BASE
    cap: float = BACKOFF_CAP
    retry_after_cap: float = RETRY_AFTER_CAP
    uncertain_attempts: int = UNCERTAIN_ATTEMPTS
    download_attempts: int = DOWNLOAD_ATTEMPTS
    breaker_threshold: int = BREAKER_THRESHOLD
    breaker_cooldown: float = BREAKER_COOLDOWN
    breaker_cooldown_cap: float = BREAKER_COOLDOWN_CAP
    slot_probe_after: float = SLOT_PROBE_AFTER
    unknown_status_polls: int = UNKNOWN_STATUS_POLLS
    task_not_found_polls: int = TASK_NOT_FOUND_POLLS
    task_not_found_window: float = TASK_NOT_FOUND_WINDOW

    def backoff(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Delay before retry number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        ceiling = min(self.cap, self.base * 2 ** min(max(attempt - 1, 0), 64))
        return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date; None if absent/garbled."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:  # "nan" and "inf" parse as floats but are no delay at all
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max((when - now).total_seconds(), 0.0)


def estimate_remaining(elapsed: float, progress_gained: int, progress_now: int) -> float | None:
    """Seconds until a task reaches 100%, from the progress it gained over `elapsed` seconds."""
    if elapsed <= 0 or progress_gained <= 0 or not 0 <= progress_now < 100:
        return None
    return elapsed * (100 - progress_now) / progress_gained


def next_poll_delay(
    interval: float, remaining: float | None, rng: random.Random | None = None
) -> float:
    """How long to wait before polling a task again.

    Without an estimate of the remaining time we poll at the configured interval. With one, we
    aim the next poll at the predicted end, within [floor, ceiling]: sparse while the end is
    far, dense when it is near. A wrong estimate costs one early poll, which brings a better one.
    """
    floor = interval * POLL_FLOOR_FACTOR
    ceiling = interval * POLL_CEILING_FACTOR
    delay = interval if remaining is None else min(max(remaining, floor), ceiling)
    if rng is not None:
        delay *= 1 + rng.uniform(-POLL_JITTER, POLL_JITTER)
    return max(delay, floor)


class PollPacer:
    """The adaptive poll schedule of one task: feed it each poll's progress, get the next delay.

    The progress rate is measured from a reference point: the submission (progress 0) for a
    task we just created, else the first poll that reported progress (a resumed task may have
    been running for hours before this run started).
    """

    def __init__(self, interval: float, now: float, *, fresh: bool,
                 rng: random.Random | None = None) -> None:
        self.interval = interval
        self._reference: tuple[float, int] | None = (now, 0) if fresh else None
        self._rng = rng

    def first_delay(self) -> float:
        # A resumed task may have finished long ago: look at once.
        return self.interval if self._reference is not None else 0.0

    def next_delay(self, now: float, progress: int | None) -> float:
        remaining = None
        if progress:
            if self._reference is None or progress < self._reference[1]:
                self._reference = (now, progress)
            since, base = self._reference
            remaining = estimate_remaining(now - since, progress - base, progress)
        return next_poll_delay(self.interval, remaining, self._rng)


class CircuitBreaker:
    """Holds back new submissions after `threshold` consecutive failures of one kind.

    Open, it lets one probe through after a cool-down (`cooldown`, doubling with each failed
    probe up to `cooldown_cap`); the probe's success closes it, its failure reopens it. So a
    run outlives an outage of minutes. `trip()` stops submissions for good (401/403: every
    further submission would fail the same way). 429 is back-pressure, not failure: the
    caller does not count it.
    """

    def __init__(self, threshold: int, *, cooldown: float = BREAKER_COOLDOWN,
                 cooldown_cap: float = BREAKER_COOLDOWN_CAP) -> None:
        self.threshold = threshold
        self._cooldown_base = cooldown
        self._cooldown_cap = cooldown_cap
        self._kind: str | None = None
        self._count = 0
        self._opens = 0  # openings since the last success: sets the cool-down
        self._reopen_at = 0.0
        self.probing = False  # a probe submission is on its way
        self.open_reason: str | None = None
        self.stopped: str | None = None  # set by trip(): no submission until the run ends

    @property
    def is_open(self) -> bool:
        return self.open_reason is not None

    @property
    def cooldown(self) -> float:
        return min(self._cooldown_cap, self._cooldown_base * 2 ** max(self._opens - 1, 0))

    def success(self) -> None:
        self._kind, self._count, self._opens = None, 0, 0
        self.probing = False
        if self.stopped is None:
            self.open_reason = None

    def failure(self, kind: str, description: str, now: float = 0.0) -> bool:
        """Record one failure; True when this failure opened (or reopened) the breaker."""
        was_probe, self.probing = self.probing, False
        if self.stopped is not None:
            return False
        if kind == self._kind:
            self._count += 1
        else:
            self._kind, self._count = kind, 1
        if not was_probe and (self.is_open or self._count < self.threshold):
            return False
        self._opens += 1
        self._reopen_at = now + self.cooldown
        self.open_reason = (f"{self._count} submissions in a row failed with {description}; "
                            f"new submissions wait (next try in {self.cooldown:g} s) while "
                            "tasks already running are still polled and downloaded")
        return True

    def wait(self, now: float) -> float | None:
        """Seconds until a submission may go (0: now); None: wait for the probe's outcome;
        inf: stopped for good. A 0 while open admits the caller as the probe."""
        if self.stopped is not None:
            return float("inf")
        if not self.is_open:
            return 0.0
        if self.probing:
            return None
        remaining = self._reopen_at - now
        if remaining > 0:
            return remaining
        self.probing = True
        return 0.0

    def provider_back(self, now: float) -> None:
        """Another request got through: if connections were what failed, probe now."""
        if self.is_open and self.stopped is None and self._kind == "connection failures":
            self._reopen_at = min(self._reopen_at, now)

    def probe_abandoned(self) -> None:
        """The probe ended without an answer either way (cancelled): let another one go."""
        self.probing = False

    def trip(self, reason: str) -> None:
        """Stop for good (401/403)."""
        if self.stopped is None:
            self.stopped = reason
        if not self.is_open:
            self.open_reason = reason
