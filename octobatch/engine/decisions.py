"""What each answer to a submission means: the table in docs/engine.md, as a pure function.

The engine asks `submit_verdict(error)` after every POST (`None` when a task id came back) and
does what the verdict says; nothing else in the engine interprets a submission's outcome.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from octobatch.transport import (
    Ambiguous,
    ApiError,
    AuthError,
    BadRequest,
    ConnectionFailed,
    RateLimited,
    ServerError,
)


class Created(enum.Enum):
    YES = "yes"
    NO = "no"
    MAYBE = "maybe"


class Then(enum.Enum):
    RECORD = "record"  # journal the task id, then poll
    WAIT_FOR_SLOT = "wait_for_slot"  # the key's task limit: learn it, wait for a freed slot
    PAUSE_KEY = "pause_key"  # rate limited: pause every submission of the key, then retry
    WAIT_OUT_OUTAGE = "wait_out_outage"  # nothing was sent: back off (the breaker counts it)
    RETRY_SAME_KEY = "retry_same_key"  # maybe created: uncertain, retry with the same key
    FAIL = "fail"  # refused as invalid: the job fails with the provider's words
    STOP = "stop"  # the key, quota or balance: no further submission can succeed


@dataclass(frozen=True)
class Verdict:
    created: Created
    then: Then
    # The kind of failure the circuit breaker counts (None: the provider answered sanely).
    failure: str | None = None

    @property
    def nothing_created(self) -> bool:
        return self.created is Created.NO


def submit_verdict(error: ApiError | None) -> Verdict:
    """The meaning of one submission's outcome: `None` is a 2xx answer with a task id."""
    if error is None:
        return Verdict(Created.YES, Then.RECORD)
    if isinstance(error, RateLimited):
        if error.slot_limit:
            return Verdict(Created.NO, Then.WAIT_FOR_SLOT)
        return Verdict(Created.NO, Then.PAUSE_KEY)
    if isinstance(error, ConnectionFailed):
        return Verdict(Created.NO, Then.WAIT_OUT_OUTAGE, failure="connection failures")
    if isinstance(error, AuthError):
        return Verdict(Created.NO, Then.STOP)
    if isinstance(error, BadRequest):  # a 4xx is an answer: the provider created nothing
        return Verdict(Created.NO, Then.FAIL)
    if isinstance(error, ServerError):
        return Verdict(Created.MAYBE, Then.RETRY_SAME_KEY, failure="server errors")
    if isinstance(error, Ambiguous):
        return Verdict(Created.MAYBE, Then.RETRY_SAME_KEY, failure="dropped connections")
    # Anything else left this machine and came back unreadable: assume the worst.
    return Verdict(Created.MAYBE, Then.RETRY_SAME_KEY, failure="unreadable answers")
