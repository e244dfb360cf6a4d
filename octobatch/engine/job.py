"""One job's protocol for one run: submit (or take up its task), wait for the task, download.

Every state change goes through the state store, and the ones that matter for money are
synced before the job moves on: `submitting` + Idempotency-Key before the POST, then the
answer's meaning (a task id, nothing created, maybe created) right after it, inside the part
a cancellation cannot cut short. So a crash at any moment leaves a task id to poll, a
`pending` job (nothing was created), or an `uncertain` one to resubmit with the same key; a
job that waits (for a slot, a rate limit, an outage) is never left `submitting`.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn, TypeVar

from octobatch import progress as ev
from octobatch.download import (
    RESUME_AT_ONCE_BYTES,
    LocalWriteError,
    PermanentDownloadError,
    keep_for_resume,
    local_error,
    name_fits,
    place,
)
from octobatch.engine.decisions import Then, submit_verdict
from octobatch.engine.options import EngineOptions
from octobatch.engine.slots import Stopped, SubmitGate
from octobatch.errors import OctobatchError
from octobatch.inputs import InputFileError
from octobatch.jobs import ApiRequest
from octobatch.models import build_request
from octobatch.owned import Recorded, in_the_way
from octobatch.plan import Action, Step
from octobatch.providers.base import Provider, TaskState, VideoStatus
from octobatch.retry import POLL_CEILING_FACTOR, PollPacer
from octobatch.state import LockEntry, StateStore, Status
from octobatch.takes import keep_earlier_takes
from octobatch.transport import (
    Ambiguous,
    ApiError,
    AuthError,
    BadRequest,
    ConnectionFailed,
    Downloaded,
    RateLimited,
    ServerError,
    TaskNotFound,
    TruncatedDownload,
    UrlExpired,
)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

_FRESH_SUBMIT = (Action.SUBMIT, Action.REGENERATE, Action.RETRY)
# Network trouble on a known task: waited out for as long as the run goes on.
_TRANSIENT = (ConnectionFailed, Ambiguous, ServerError, RateLimited, TruncatedDownload)


_WAITED_FOR = {
    "provider_slot": "the provider's task limit for this key was reached",
    "rate_limit": "the provider kept rate-limiting this key",
    "outage": "the provider did not answer",
}


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


class JobRun:
    """The protocol of one job: `await JobRun(...).run()` ends it for this run (raises Done)."""

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

    async def run(self) -> NoReturn:
        step, entry = self.step, self.step.entry
        task_id: str | None = None
        fresh = False
        if step.action in (Action.POLL, Action.DOWNLOAD) and entry and entry.task_id:
            task_id = entry.task_id
            if entry.status is Status.COMPLETED:
                # The file is missing or damaged, so the job is not complete until it is back.
                self.store.awaiting_task(self.job_id)
        elif step.action is Action.RETRY and entry and entry.task_id and _timed_out(entry):
            # A task that outlived an earlier --timeout may have finished since: look before
            # paying for a new one.
            task_id = await self._reclaim(entry.task_id)
        if task_id is None:
            if not name_fits(self.ctx.options.output_dir, self.job_id):
                self._unfinished(None, "the job id is too long to be a file name on this "
                                 "file system; shorten it (nothing was submitted)")
            task_id = await self._submit()  # holds a slot of the gate from here
            fresh = True
        else:
            self.gate.known_task()
        try:
            video = await self._await_result(task_id, fresh=fresh)
        finally:
            self.gate.task_finished()  # completed, failed or given up: the provider's slot is free
        await self._download(video)
        raise Done

    async def _reclaim(self, task_id: str) -> str | None:
        """The old task's id if it is still worth waiting for, else None (submit anew)."""
        try:
            video = await self.provider.poll(task_id)
        except ApiError:
            return None
        if video.state is TaskState.FAILED:
            return None
        self.store.awaiting_task(self.job_id)
        return task_id

    # -- submission --

    async def _submit(self) -> str:
        job_id, job, entry = self.job_id, self.step.job, self.step.entry
        if job is None:
            raise Done  # the plan only submits jobs that are in the manifest
        if self.step.action is Action.UNCERTAIN and entry is not None and entry.idempotency_key:
            key, sent = entry.idempotency_key, entry.attempts
            if entry.status is Status.SUBMITTING:
                # A run died during this POST: it counts against the bound, or repeated
                # crashes could resubmit forever.
                sent += 1
            # The earlier POST (cut off by a crash or a lost answer) may have created a task:
            # whatever this one creates may be a second, paid one.
            self.store.uncertain(job_id, attempts=sent)
            if sent >= self.policy.uncertain_attempts:
                self._fail(None, "uncertain", _uncertain_message(sent))
        else:
            if self.step.action not in _FRESH_SUBMIT and self.step.action is not Action.UNCERTAIN:
                raise Done
            key, sent = uuid.uuid4().hex, 0
            self.store.pending(job_id, spec_hash=job.spec_hash, model=job.model,
                               spec=job.canonical, idempotency_key=key)
        try:  # reads the job's local files, off the loop, before it is journaled submitting
            schema_dir = self.ctx.options.schema_dir
            request = (await asyncio.to_thread(build_request, job, schema_dir=schema_dir)
                       if job.files else build_request(job, schema_dir=schema_dir))
        except InputFileError as exc:  # gone or changed since validation: this job's problem
            self._fail(None, "input_file", str(exc))
        except (OSError, ValueError, OctobatchError) as exc:
            self._fail(None, "bad_input", f"cannot build the request: {exc}")
        refusals = 0  # answers that certainly created nothing, in a row
        while True:
            await self._admit(sent)
            try:
                video = await _outlast_cancellation(
                    asyncio.ensure_future(self._post(request, key, sent)))
            except asyncio.CancelledError:
                self.gate.abandoned()
                raise
            except ApiError as exc:
                verdict = submit_verdict(exc)
                if verdict.then is Then.RETRY_SAME_KEY:
                    sent += 1
                    self.gate.not_created(answered=False)
                    self.ctx.emit(ev.Uncertain(job_id=job_id, attempt=sent, reason=str(exc)))
                    kind = verdict.failure or "failures"
                    self._breaker_failure(kind, kind)
                    if sent >= self.policy.uncertain_attempts:
                        self._fail(None, "uncertain", _uncertain_message(sent))
                    await self._pause(self.policy.backoff(sent, self.ctx.rng, _retry_after(exc)))
                    continue
                self.gate.not_created(answered=not isinstance(exc, ConnectionFailed))
                refusals += 1
                await self._after_nothing_created(verdict.then, exc, sent, refusals)
                continue
            break
        self.gate.created()
        self.ctx.reach.answer()
        possible_duplicate = self.store.state.jobs[job_id].possible_duplicate
        self.ctx.emit(ev.Submitted(job_id=job_id, task_id=video.task_id, attempt=sent + 1,
                                   possible_duplicate=possible_duplicate))
        return video.task_id

    async def _admit(self, sent: int) -> None:
        """Wait for the gate (a provider slot, a rate-limit pause, the breaker), saying why."""
        reason = self.gate.blocked_by()
        if reason is not None and reason != self._waiting_for:
            self.ctx.emit(ev.Waiting(job_id=self.job_id, reason=reason))
        self._waiting_for = reason
        remaining = None if self.deadline is None else self.deadline - self.ctx.clock()
        try:
            await asyncio.wait_for(self.gate.admit(), remaining)
        except Stopped as stop:
            self._give_up_submit(sent, f"not submitted: {stop}")
        except asyncio.TimeoutError:
            # The job's own bound (--timeout) also covers waiting to be submitted.
            self._give_up_submit(sent, f"not submitted within {self.ctx.options.timeout:g} s "
                                 f"(--timeout): {_WAITED_FOR.get(reason or '', 'waiting')}")
        self._waiting_for = None

    async def _after_nothing_created(self, then: Then, exc: ApiError, sent: int,
                                     refusals: int) -> None:
        """The provider created nothing (the journal says so already): wait as the answer
        says, as long as the run goes on."""
        if then is Then.FAIL:
            self._fail(None, exc.code or "bad_request", exc.message)
        if then is Then.STOP:
            self._stop(str(exc))
            self._give_up_submit(sent, "not submitted: " + str(exc))
        if then is not Then.WAIT_OUT_OUTAGE:
            self.ctx.reach.answer()
        if then is Then.WAIT_FOR_SLOT:
            before = self.gate.limit
            limit = self.gate.slot_refused()
            self.ctx.emit(ev.Throttled(job_id=self.job_id, operation="submit", delay=0.0,
                                       retry_after=False))
            if limit != before:
                self.ctx.emit(ev.LimitLearned(limit=limit))
            return  # the gate holds it until a slot is free
        if then is Then.PAUSE_KEY:
            retry_after = _retry_after(exc)
            delay = self.gate.pause(None if retry_after is None
                                    else min(retry_after, self.policy.retry_after_cap))
            self.ctx.emit(ev.Throttled(job_id=self.job_id, operation="submit",
                                       delay=round(delay, 3), retry_after=retry_after is not None))
            return
        # Nothing was sent (refused, connect timeout): an outage, or the wrong address.
        assert isinstance(exc, ConnectionFailed)
        if self.ctx.reach.refusal(exc):
            self._stop(f"{exc.message}; check --base-url (or OCTOBATCH_BASE_URL) and the "
                       "network")
            self._give_up_submit(sent, f"not submitted: {exc.message}")
        self._breaker_failure("connection failures", f"connection failures ({exc.message})")
        delay = self.policy.backoff(refusals, self.ctx.rng)
        self.ctx.emit(ev.Retried(job_id=self.job_id, operation="submit", attempt=refusals,
                                 delay=round(delay, 3), reason=str(exc)))
        await self._pause(delay)

    async def _post(self, request: ApiRequest, key: str, sent: int) -> VideoStatus:
        """Send one submission and journal what its answer means before anything else."""
        cost = self._within_budget(sent)  # checked and counted with no await in between
        self.store.submitting(self.job_id, cost=cost)
        try:
            await self.store.sync()
        except asyncio.CancelledError:
            self.store.not_created(self.job_id, cost=cost)
            self._nothing_sent(sent)
            raise
        try:
            video = await self.provider.submit(request, key)
        except ApiError as exc:
            if submit_verdict(exc).nothing_created:
                self.store.not_created(self.job_id, cost=cost)
                self._nothing_sent(sent)
            else:
                self.store.uncertain(self.job_id, attempts=sent + 1)
            await self.store.sync()
            raise
        # Anything else (a local error mid-request) leaves the job `submitting`: the POST may
        # have left, so the next run treats it as uncertain.
        self.store.task_recorded(
            self.job_id,
            task_id=video.task_id,
            status=Status.RUNNING if video.state is TaskState.RUNNING else Status.QUEUED,
            attempts=sent + 1,
            submitted_at=_now_iso(),
        )
        await self.store.sync()
        return video

    def _within_budget(self, sent: int) -> float:
        """This POST's cost, or give up the job when it would pass `max_cost` (and stop all
        submissions: the cap ends them, also for cheaper jobs after this one)."""
        options, job = self.ctx.options, self.step.job
        cost = options.cost_of(job) if options.cost_of and job else 0.0
        cap = options.max_cost
        if cap is None:
            return cost or 0.0
        if cost is None:
            assert job is not None
            self.gate.abandoned()  # admitted, never sent
            self._unfinished(None, f"not submitted: model {job.model} has no price in "
                             "settings.prices, so the cost cap cannot count it")
        capped = any(reason.startswith(_CAPPED) for reason in self.ctx.stopped)
        if not capped and self.store.spent + cost > cap + 1e-9:
            self._stop(f"{_CAPPED}: {self.store.spent:g} spent, the next submission would pass "
                       f"--max-cost {cap:g}; raise it (--max-cost or settings.max_cost) and "
                       "rerun to submit the jobs still waiting")
            capped = True
        if capped:
            self.gate.abandoned()
            self._give_up_submit(sent, f"not submitted: {_CAPPED} (--max-cost {cap:g})")
        return cost

    def _nothing_sent(self, sent: int) -> None:
        # As before the POST: pending, or uncertain if an earlier POST may have made a task.
        if sent:
            self.store.uncertain(self.job_id, attempts=sent)
        else:
            self.store.back_to_pending(self.job_id)

    def _breaker_failure(self, kind: str, description: str) -> None:
        breaker = self.gate.breaker
        if breaker.failure(kind, description, self.ctx.clock()):
            self.ctx.emit(ev.SubmissionsPaused(reason=breaker.open_reason or description,
                                               retry_in=round(breaker.cooldown, 3)))

    def _stop(self, reason: str) -> None:
        self.gate.stop(reason)
        if reason not in self.ctx.stopped:
            self.ctx.stopped.add(reason)
            self.ctx.emit(ev.SubmissionsStopped(reason=reason))

    def _give_up_submit(self, sent: int, reason: str) -> NoReturn:
        # Nothing was created by the attempts since the last ambiguous one, so the job is as
        # it was before: pending, or uncertain if an earlier POST may have created a task.
        self._nothing_sent(sent)
        self.ctx.emit(ev.NotSubmitted(job_id=self.job_id, task_id=None, reason=reason))
        raise Done

    # -- polling --

    async def _await_result(self, task_id: str, *, fresh: bool) -> VideoStatus:
        """Poll until the task completes; anything else ends the job for this run."""
        pacer = PollPacer(self.ctx.options.poll_interval, self.ctx.clock(), fresh=fresh,
                          rng=self.ctx.rng)
        delay = pacer.first_delay()
        unknown_polls = 0
        last: tuple[TaskState, int | None] | None = None
        while True:
            if self.deadline is not None:
                delay = min(delay, max(self.deadline - self.ctx.clock(), 0.0))
            if delay > 0:
                await self.ctx.sleep(delay)
            video = await self._poll(task_id)
            now = self.ctx.clock()
            if video.state is TaskState.COMPLETED:
                self.ctx.emit(ev.Completed(job_id=self.job_id, task_id=task_id))
                return video
            if video.state is TaskState.FAILED:
                error = video.error or {}
                self._fail(task_id, error.get("code", "failed"),
                           error.get("message", "the provider reported failure"))
            if video.state is TaskState.UNKNOWN:
                unknown_polls += 1
                if unknown_polls == 1:
                    self.ctx.emit(ev.UnknownStatus(job_id=self.job_id, task_id=task_id,
                                                   status=video.status_word))
                if unknown_polls >= self.policy.unknown_status_polls:
                    self._unfinished(task_id, f"the provider kept reporting status "
                                     f"{video.status_word!r}; rerun later to check again")
            else:
                unknown_polls = 0
                status = Status.RUNNING if video.state is TaskState.RUNNING else Status.QUEUED
                self.store.status_seen(self.job_id, status)  # journals only a change
                if last != (video.state, video.progress):
                    self.ctx.emit(ev.Progressed(job_id=self.job_id, task_id=task_id,
                                                status=video.state.value,
                                                progress=video.progress))
                last = (video.state, video.progress)
            self._check_timeout(task_id, now)
            delay = pacer.next_delay(now, video.progress)

    def _check_timeout(self, task_id: str, now: float) -> None:
        if self.deadline is not None and now >= self.deadline:
            self._fail(task_id, "timeout",
                       f"not finished after {self.ctx.options.timeout:g} s (--timeout); the "
                       "task id is kept: `--retry-failed` checks it before resubmitting")

    async def _poll(self, task_id: str) -> VideoStatus:
        """One poll, patient: a known task is never given up because the network is down."""
        attempt = 0
        not_found_since: float | None = None
        not_found = 0
        while True:
            try:
                video = await self.provider.poll(task_id)
                self.ctx.reach.answer()
                self.gate.provider_answered()
                return video
            except TaskNotFound as exc:
                # A lagging database can miss a task just made: fail only when it persists.
                self.ctx.reach.answer()
                now = self.ctx.clock()
                not_found_since = now if not_found_since is None else not_found_since
                not_found += 1
                if (not_found >= self.policy.task_not_found_polls
                        and now - not_found_since >= self.policy.task_not_found_window):
                    self._fail(task_id, "task_not_found", exc.message)
                delay = max(self.ctx.options.poll_interval,
                            self.policy.task_not_found_window
                            / max(self.policy.task_not_found_polls - 1, 1))
                await self._pause(delay, task_id)
            except AuthError as exc:
                self._stop(str(exc))
                self._unfinished(task_id, f"cannot poll: {exc}")
            except BadRequest as exc:
                self._fail(task_id, exc.code or "bad_request", exc.message)
            except ApiError as exc:
                attempt += 1
                if isinstance(exc, ConnectionFailed) and self.ctx.reach.refusal(exc):
                    self._unfinished(task_id, f"cannot poll: {exc.message}; check --base-url "
                                     "and the network (the task id is kept)")
                await self._retry_wait("poll", attempt, exc, task_id)

    # -- download --

    async def _download(self, video: VideoStatus) -> None:
        task_id = video.task_id
        options = self.ctx.options
        url = video.video_url or self.provider.content_url(task_id)
        final = options.output_dir / f"{self.job_id}.mp4"
        partial = options.output_dir / f".{self.job_id}.mp4.part"
        refused = 0  # answers that are not the network's fault
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    got = await self.provider.download(url, partial)
                    break
                except UrlExpired:
                    refused += 1
                    if refused >= self.policy.download_attempts:
                        self._unfinished(task_id, "the result URL kept failing; rerun "
                                         "to download it again")
                    # Signed links expire: a poll hands out a fresh one. Never resubmit.
                    fresh = await self._poll(task_id)
                    url = fresh.video_url or self.provider.content_url(task_id)
                except (AuthError, PermanentDownloadError) as exc:
                    self._unfinished(task_id, f"download refused: {exc}")
                except LocalWriteError as exc:
                    self._unfinished(task_id, str(exc))
                except ApiError as exc:
                    if isinstance(exc, TruncatedDownload) \
                            and exc.progressed >= RESUME_AT_ONCE_BYTES:
                        attempt = 0  # the bytes are kept: resume at once
                        continue
                    if not isinstance(exc, _TRANSIENT):
                        refused += 1
                        if refused >= self.policy.download_attempts:
                            self._unfinished(task_id, f"download failed: {exc}; rerun to "
                                             "download it again (the task is not resubmitted)")
                    if attempt == 1 or self._waiting_for != "download":
                        self._waiting_for = "download"
                        self.ctx.emit(ev.Waiting(job_id=self.job_id, reason="download",
                                                 detail=_short(exc)))
                    if self.deadline is not None and self.ctx.clock() >= self.deadline:
                        self._unfinished(task_id, f"download failed until --timeout: {exc}; "
                                         "rerun to download it (the task is not resubmitted)")
                    await self._retry_wait("download", attempt, exc, task_id)
            # Moving the file into place and journaling it are one step that a cancellation
            # cannot split: a video in place is recorded. In a thread: directory operations
            # can wait on the disk, which the event loop must not.
            await _outlast_cancellation(asyncio.ensure_future(
                self._put_in_place(task_id, url, got, partial, final)))
        except BaseException:
            keep_for_resume(partial)  # the next run continues from these bytes when it can
            raise

    async def _put_in_place(self, task_id: str, url: str, got: Downloaded, partial: Path,
                            final: Path) -> None:
        entry, lock_dir = self.store.state.jobs[self.job_id], self.store.lock_dir
        try:
            moved, blocker = await asyncio.to_thread(_keep_and_place, entry, partial, final,
                                                     lock_dir, got)
        except OSError as exc:  # keeping an earlier take's file failed
            self._unfinished(task_id, str(local_error(exc, final)))
        except LocalWriteError as exc:
            self._unfinished(task_id, str(exc))
        if blocker is not None:
            self._unfinished(task_id, f"{blocker} (the task is kept)")
        output = os.path.relpath(final, lock_dir)
        self.store.completed(self.job_id, video_url=url, output=output, sha256=got.sha256,
                             bytes=got.bytes, completed_at=_now_iso(), moved=moved)
        # Not awaited: losing this record in a crash costs a second download, never money,
        # and the next sync (another job's, or the end of the run) makes it durable anyway.
        self.ctx.emit(ev.Downloaded(job_id=self.job_id, task_id=task_id,
                                    path=os.path.abspath(final), bytes=got.bytes,
                                    sha256=got.sha256))

    # -- shared helpers --

    async def _retry_wait(self, operation: str, attempt: int, exc: ApiError,
                          task_id: str) -> None:
        retry_after = _retry_after(exc)
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

    def _fail(self, task_id: str | None, code: str, message: str) -> NoReturn:
        self.store.failed(self.job_id, code, message)
        self.ctx.emit(ev.Failed(job_id=self.job_id, task_id=task_id, code=code, message=message))
        raise Done

    def _unfinished(self, task_id: str | None, reason: str) -> NoReturn:
        self.ctx.emit(ev.Unfinished(job_id=self.job_id, task_id=task_id, reason=reason))
        raise Done


def _keep_and_place(entry: LockEntry, partial: Path, final: Path, lock_dir: Path,
                    got: Downloaded) -> tuple[dict[int, str], str | None]:
    """Move an earlier take living at `final` aside, then the new file into place unless
    something else is in the way; (the takes moved, why the file was not placed)."""
    moved = keep_earlier_takes(entry, final, lock_dir)
    # After the earlier take moved aside, whatever is at `final` is someone else's file
    # unless it already holds these very bytes.
    blocker = in_the_way(final, entry, lock_dir, Recorded(got.sha256, got.bytes))
    if blocker is None:
        place(partial, final, got.folder)
    return moved, blocker


def _timed_out(entry: LockEntry) -> bool:
    return entry.status is Status.FAILED and (entry.error or {}).get("code") == "timeout"


def _retry_after(exc: ApiError) -> float | None:
    return exc.retry_after if isinstance(exc, (RateLimited, ServerError)) else None


def _short(exc: ApiError) -> str:
    text = exc.message
    return text if len(text) <= 80 else text[:77] + "..."


def _uncertain_message(sent: int) -> str:
    return (f"{sent} submissions got no clear answer, so the provider may hold one or more "
            "tasks for this job that octobatch never heard about; check the provider's "
            "dashboard before `--retry-failed` (which submits it again)")


_CAPPED = "the cost cap is reached"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _outlast_cancellation(task: asyncio.Future[T]) -> T:
    """The result of `task`, which is left to finish even if the caller is cancelled meanwhile.

    A submission's answer may be a paid task id: abandoning it on Ctrl-C would make the next
    run pay again, so the POST and its journal record complete first (the transport's
    timeouts bound the wait) and the cancellation is re-raised after. Likewise a video moved
    into place is journaled before the cancellation goes on. A second Ctrl-C still exits at
    once.
    """
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: whatever it was, the rerun deals with the job
        raise asyncio.CancelledError
    return task.result()
