"""Run events and the listeners that show them.

The engine never prints: it calls `emit(event)` with one of the dataclasses below. The command
layer picks a listener: a tqdm bar on a terminal, plain periodic lines otherwise, one JSON
object per line with `--json`, nothing with `--quiet`. Events carry job ids, task ids and
numbers, never the API key.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, ClassVar, Protocol

# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = "event"
    notable: ClassVar[bool] = False  # shown as its own line by the human-readable listeners

    def to_json(self) -> dict[str, Any]:
        return {"event": self.name, **asdict(self)}

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class RunStarted(Event):
    name: ClassVar[str] = "run_started"
    manifest: str
    total: int
    actions: dict[str, int] = field(default_factory=dict)  # plan action -> number of jobs


@dataclass(frozen=True)
class Skipped(Event):
    name: ClassVar[str] = "skipped"
    job_id: str
    reason: str


@dataclass(frozen=True)
class Submitted(Event):
    name: ClassVar[str] = "submitted"
    job_id: str
    task_id: str
    attempt: int
    possible_duplicate: bool


@dataclass(frozen=True)
class Progressed(Event):
    name: ClassVar[str] = "progress"
    job_id: str
    task_id: str
    status: str  # normalised: queued, running
    progress: int | None


@dataclass(frozen=True)
class Completed(Event):
    """The provider finished the task; the download comes next."""

    name: ClassVar[str] = "completed"
    job_id: str
    task_id: str


@dataclass(frozen=True)
class Downloaded(Event):
    name: ClassVar[str] = "downloaded"
    job_id: str
    task_id: str
    path: str  # absolute (octobatch.paths: programs get absolute paths)
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Failed(Event):
    name: ClassVar[str] = "failed"
    notable: ClassVar[bool] = True
    job_id: str
    task_id: str | None
    code: str
    message: str

    def describe(self) -> str:
        return f"job '{self.job_id}' failed ({self.code}): {self.message}"


@dataclass(frozen=True)
class Retried(Event):
    """A transient failure of one operation (submit, poll, download); retrying after `delay`."""

    name: ClassVar[str] = "retried"
    job_id: str
    operation: str
    attempt: int
    delay: float
    reason: str


@dataclass(frozen=True)
class Throttled(Event):
    """429: waiting `delay` seconds (the server's Retry-After when it sent one)."""

    name: ClassVar[str] = "throttled"
    job_id: str
    operation: str
    delay: float
    retry_after: bool


@dataclass(frozen=True)
class Uncertain(Event):
    """A submission may have created a task we never heard about: a possible duplicate."""

    name: ClassVar[str] = "uncertain"
    notable: ClassVar[bool] = True
    job_id: str
    attempt: int
    reason: str

    def describe(self) -> str:
        return (f"job '{self.job_id}': submission {self.attempt} may have created a task "
                f"({self.reason}); retrying with the same Idempotency-Key, possible duplicate")


@dataclass(frozen=True)
class UnknownStatus(Event):
    name: ClassVar[str] = "unknown_status"
    notable: ClassVar[bool] = True
    job_id: str
    task_id: str
    status: str

    def describe(self) -> str:
        return f"job '{self.job_id}': task {self.task_id} reports an unknown status {self.status!r}"


@dataclass(frozen=True)
class Unfinished(Event):
    """The job stops for this run without a result; a rerun picks it up."""

    name: ClassVar[str] = "unfinished"
    notable: ClassVar[bool] = True
    job_id: str
    task_id: str | None
    reason: str

    def describe(self) -> str:
        return f"job '{self.job_id}' unfinished: {self.reason}"


@dataclass(frozen=True)
class NotSubmitted(Unfinished):
    """Unfinished because submissions were stopped: one `submissions_stopped` line says why,
    so the human-readable listeners do not print one line per job."""

    notable: ClassVar[bool] = False


@dataclass(frozen=True)
class Waiting(Event):
    """The job waits: `provider_slot` (the key's task limit), `rate_limit` (a 429 paused the
    key's submissions, or answered a poll), `outage` (the provider does not answer a
    submission or a poll; `detail` says how) or `download` (its video's transfer keeps
    failing; `detail` says how). It waits as long as the run goes on."""

    name: ClassVar[str] = "waiting"
    job_id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class LimitLearned(Event):
    """The provider refused one more task: the key's limit of unfinished tasks is `limit`."""

    name: ClassVar[str] = "limit_learned"
    limit: int


@dataclass(frozen=True)
class SubmissionsPaused(Event):
    """The circuit breaker opened: no submission for `retry_in` seconds, then one probe."""

    name: ClassVar[str] = "submissions_paused"
    notable: ClassVar[bool] = True
    reason: str
    retry_in: float

    def describe(self) -> str:
        return f"submissions paused: {self.reason}"


@dataclass(frozen=True)
class DeadlinePassed(Event):
    """The run deadline (`--deadline`) passed: every job still waiting is left unfinished."""

    name: ClassVar[str] = "deadline_passed"
    notable: ClassVar[bool] = True
    deadline: float
    unfinished: int

    def describe(self) -> str:
        return (f"the run deadline ({self.deadline:g} s) passed; {self.unfinished} jobs left "
                "unfinished (rerun to resume)")


@dataclass(frozen=True)
class SubmissionsStopped(Event):
    name: ClassVar[str] = "submissions_stopped"
    notable: ClassVar[bool] = True
    reason: str

    def describe(self) -> str:
        return f"submissions stopped: {self.reason}"


@dataclass(frozen=True)
class Pruned(Event):
    name: ClassVar[str] = "pruned"
    job_id: str


@dataclass(frozen=True)
class RunFinished(Event):
    name: ClassVar[str] = "run_finished"
    manifest: str
    completed: int
    failed: int
    unfinished: int
    running_at_provider: int
    possible_duplicates: list[str] = field(default_factory=list)
    learned_limit: int | None = None  # the key's task limit, if the provider enforced one
    not_submitted: int = 0  # unfinished jobs without a task id (waiting to be submitted)


Emit = Callable[[Event], None]


def discard(event: Event) -> None:
    """The `--quiet` listener."""


class Listener(Protocol):
    """What `make_listener` returns: an `Emit` that is closed when the run ends or stops."""

    def __call__(self, event: Event) -> None: ...

    def close(self) -> None: ...


class Quiet:
    """`--quiet`: nothing."""

    def __call__(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass


# --- listeners -------------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso_utc(moment: datetime) -> str:
    """`2026-12-01T22:15:03.120Z`: ISO 8601, UTC, milliseconds."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class JsonLines:
    """`--json`: one JSON object per event on a line, flushed, for scripts and CI.

    Each carries `ts`, when the listener saw it (ISO 8601 UTC), so logs can be lined up.
    """

    def __init__(self, stream: IO[str], clock: Callable[[], datetime] = utc_now) -> None:
        self._stream = stream
        self._clock = clock

    def __call__(self, event: Event) -> None:
        record = {**event.to_json(), "ts": iso_utc(self._clock())}
        line = json.dumps(_finite(record), ensure_ascii=False, sort_keys=True, allow_nan=False)
        self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        pass


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as null: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


_WAITING = {
    "provider_slot": "waiting for a provider slot",
    "rate_limit": "waiting out a rate limit",
    "outage": "waiting for the provider to answer again",
    "download": "waiting on downloads",
}


class Tally:
    """Counts jobs by state from the event stream, for the human-readable listeners.

    `run_started` already says how many jobs are done (skip) or failed before (failed), so a
    resumed run counts them from its first line; their own `skipped`/`failed` events, which the
    engine sends before any work starts, then only name them.
    """

    def __init__(self) -> None:
        self.total = 0
        self.state: dict[str, str] = {}
        self._announced: dict[str, int] = {"done": 0, "failed": 0}
        self.limit: int | None = None
        self.download_trouble = ""

    def feed(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.total += event.total
            self._announced["done"] += event.actions.get("skip", 0)
            self._announced["failed"] += event.actions.get("failed", 0)
        elif isinstance(event, Skipped):
            self._settle(event.job_id, "done")
        elif isinstance(event, Downloaded):
            self.state[event.job_id] = "done"
        elif isinstance(event, Submitted):
            self.state[event.job_id] = "queued"
        elif isinstance(event, Progressed):
            self.state[event.job_id] = event.status
        elif isinstance(event, Completed):
            self.state[event.job_id] = "downloading"
        elif isinstance(event, Failed):
            self._settle(event.job_id, "failed")
        elif isinstance(event, Unfinished):
            self.state[event.job_id] = "unfinished"
        elif isinstance(event, Waiting):
            self.state[event.job_id] = "waiting:" + event.reason
            if event.reason == "download":
                self.download_trouble = event.detail
        elif isinstance(event, LimitLearned):
            self.limit = event.limit

    def _settle(self, job_id: str, state: str) -> None:
        if job_id not in self.state and self._announced[state] > 0:
            self._announced[state] -= 1  # counted since run_started
        self.state[job_id] = state

    def count(self, state: str) -> int:
        return sum(1 for s in self.state.values() if s == state) + self._announced.get(state, 0)

    @property
    def finished(self) -> int:
        return sum(self.count(s) for s in ("done", "failed", "unfinished"))

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in
                 ("queued", "running", "downloading") if self.count(s)]
        for reason, words in _WAITING.items():
            if n := self.count("waiting:" + reason):
                if reason == "provider_slot" and self.limit is not None:
                    words += f" (limit {self.limit} learned)"
                elif reason == "download" and self.download_trouble:
                    words += f" ({self.download_trouble})"
                parts.append(f"{n} {words}")
        parts += [f"{self.count(s)} {s}" for s in ("failed", "unfinished") if self.count(s)]
        return ", ".join(parts)


class PlainLines:
    """Not a terminal: a status line at most every `interval` seconds, notable events at once."""

    def __init__(self, stream: IO[str], interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._last = -float("inf")
        self.tally = Tally()

    def __call__(self, event: Event) -> None:
        self.tally.feed(event)
        if event.notable:
            self._write(event.describe())
        now = self._clock()
        if isinstance(event, RunFinished) or now - self._last >= self._interval:
            self._last = now
            t = self.tally
            extra = t.summary()
            self._write(f"{t.count('done')}/{t.total} done" + (f"; {extra}" if extra else ""))

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        pass


class ProgressBar:
    """A terminal: a tqdm bar of jobs done/total with counts by state; ETA from tqdm."""

    def __init__(self, stream: IO[str], *, mininterval: float = 0.1) -> None:
        self._stream = stream
        self._mininterval = mininterval
        self._bar: Any = None  # drawn from the first run_started, when the total is known
        self._closed = False
        self.tally = Tally()

    def __call__(self, event: Event) -> None:
        before = self.tally.finished
        self.tally.feed(event)
        if isinstance(event, RunStarted) and not self._closed:
            before = self._start(before)
        if self._bar is None:
            return
        if event.notable:
            self._bar.write(event.describe(), file=self._stream)
        self._bar.set_postfix_str(self.tally.summary(), refresh=False)
        self._bar.update(self.tally.finished - before)  # redraws at most every mininterval
        if isinstance(event, RunFinished):
            self.close()

    def close(self) -> None:
        """Draw the bar's last state once and let go of the terminal line.

        Called on Ctrl-C before the "interrupted" message: a bar left open is redrawn by
        tqdm when it is garbage-collected, below that message.
        """
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._closed = True

    def _start(self, before: int) -> int:
        """Draw the bar (or grow its total); returns the count the bar now shows."""
        if self._bar is not None:
            self._bar.total = self.tally.total
            return before
        from tqdm import tqdm  # only the terminal listener needs it

        self._bar = tqdm(total=self.tally.total, initial=self.tally.finished, unit="job",
                         file=self._stream,
                         dynamic_ncols=True, mininterval=self._mininterval,
                         bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                    "[{elapsed}<{remaining}{postfix}]")
        return self.tally.finished  # a resumed run starts at the jobs already done


def make_listener(stream: IO[str], *, json_lines: bool, quiet: bool) -> Listener:
    if quiet:
        return Quiet()
    if json_lines:
        return JsonLines(stream)
    if stream.isatty():
        return ProgressBar(stream)
    return PlainLines(stream)
