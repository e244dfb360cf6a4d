"""The run engine: carry out a plan by submitting, polling and downloading under a bound.

At most `concurrency` jobs are in flight at once (submitted and not yet downloaded); their
submissions, polls and downloads overlap freely. Every state change goes through the state
store, and the ones that matter for money are synced before the engine moves on:
`submitting` + Idempotency-Key before the POST, the task id right after it. So a crash at any
moment leaves either a task id to poll or an `uncertain` job to resubmit with the same key.

The engine never prints: it reports through `emit` and returns a `RunResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from octobatch import progress as ev
from octobatch.download import (
    RESUME_AT_ONCE_BYTES,
    DownloadLimits,
    LocalWriteError,
    PermanentDownloadError,
    check_output_dir,
    name_fits,
    place,
)
from octobatch.errors import OctobatchError
from octobatch.inputs import InputFileError
from octobatch.jobs import ApiRequest
from octobatch.models import build_request, find_model
from octobatch.plan import Action, Plan, Step
from octobatch.providers.base import (
    DEFAULT_PROVIDER,
    Provider,
    ProviderSource,
    TaskState,
    VideoStatus,
)
from octobatch.retry import (
    DEFAULT_CONCURRENCY,
    DEFAULT_POLL_INTERVAL,
    CircuitBreaker,
    PollPacer,
    RetryPolicy,
)
from octobatch.state import LockEntry, StateStore, Status
from octobatch.transport import (
    Ambiguous,
    ApiError,
    AuthError,
    BadRequest,
    ConnectionFailed,
    RateLimited,
    ServerError,
    TaskNotFound,
    TruncatedDownload,
    UrlExpired,
)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

_FRESH_SUBMIT = (Action.SUBMIT, Action.REGENERATE, Action.RETRY)
_IN_FLIGHT = (Status.QUEUED, Status.RUNNING)


@dataclass(frozen=True)
class EngineOptions:
    output_dir: Path
    concurrency: int = DEFAULT_CONCURRENCY
    poll_interval: float = DEFAULT_POLL_INTERVAL
    timeout: float | None = None  # per-job deadline in seconds; None = wait as long as it takes
    prune: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    schema_dir: Path | None = None  # where the model files are (None: the shipped ones)
    download: DownloadLimits = field(default_factory=DownloadLimits.from_env)


@dataclass(frozen=True)
class RunResult:
    completed: int
    failed: int
    unfinished: int
    running_at_provider: int  # jobs with a task id whose result we do not have yet
    possible_duplicates: tuple[str, ...]
    submissions_stopped: str | None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.unfinished == 0


class _Done(Exception):
    """Ends one job's work for this run; its outcome is already journaled and emitted."""


class Engine:
    """Runs one manifest's plan against one state store."""

    def __init__(
        self,
        store: StateStore,
        providers: ProviderSource,
        options: EngineOptions,
        emit: ev.Emit = ev.discard,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.options = options
        self.emit = emit
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._policy = options.retry
        self.breaker = CircuitBreaker(self._policy.breaker_threshold)

    # -- the run --

    async def run(self, plan: Plan) -> RunResult:
        steps = plan.steps
        self.emit(ev.RunStarted(
            manifest=self.store.manifest_path.name,
            total=sum(1 for s in steps if s.action is not Action.ORPHAN),
            actions=dict(Counter(s.action.value for s in steps)),
        ))
        check_output_dir(self.options.output_dir)  # before anything is paid for
        active: list[Step] = []
        for step in steps:
            if step.action is Action.SKIP:
                self.emit(ev.Skipped(job_id=step.job_id, reason=step.reason))
            elif step.action is Action.FAILED:
                error = (step.entry.error if step.entry else None) or {}
                self.emit(ev.Failed(job_id=step.job_id,
                                    task_id=step.entry.task_id if step.entry else None,
                                    code=error.get("code", "failed"),
                                    message=error.get("message", step.reason)))
            elif step.action is Action.ORPHAN:
                if self.options.prune:
                    self.store.remove(step.job_id)
                    self.emit(ev.Pruned(job_id=step.job_id))
            else:
                active.append(step)
        await self._run_workers(active)
        await self.store.sync()
        result = self.result([s.job_id for s in steps if s.action is not Action.ORPHAN])
        self.emit(ev.RunFinished(
            manifest=self.store.manifest_path.name,
            completed=result.completed,
            failed=result.failed,
            unfinished=result.unfinished,
            running_at_provider=result.running_at_provider,
            possible_duplicates=list(result.possible_duplicates),
        ))
        return result

    async def _run_workers(self, steps: Sequence[Step]) -> None:
        # A fixed pool of workers pulling from a queue bounds jobs in flight without creating
        # one waiting coroutine per job (10,000-job manifests stay small in memory).
        queue: asyncio.Queue[Step] = asyncio.Queue()
        for step in steps:
            queue.put_nowait(step)

        async def worker() -> None:
            while not queue.empty():
                step = queue.get_nowait()
                with contextlib.suppress(_Done):
                    await self._process(step)

        workers = [asyncio.create_task(worker())
                   for _ in range(min(self.options.concurrency, len(steps)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def result(self, job_ids: Sequence[str]) -> RunResult:
        """Tally the store's state for `job_ids` (also used after an interrupted run)."""
        counts: Counter[Status] = Counter()
        duplicates = []
        running = 0
        for job_id in job_ids:
            entry = self.store.state.jobs.get(job_id)
            if entry is None:
                counts[Status.PENDING] += 1
                continue
            counts[entry.status] += 1
            if entry.possible_duplicate:
                duplicates.append(job_id)
            running += bool(entry.task_id) and entry.status in _IN_FLIGHT
        completed, failed = counts[Status.COMPLETED], counts[Status.FAILED]
        return RunResult(
            completed=completed,
            failed=failed,
            unfinished=len(job_ids) - completed - failed,
            running_at_provider=running,
            possible_duplicates=tuple(sorted(duplicates)),
            submissions_stopped=self.breaker.open_reason,
        )

    # -- one job --

    async def _process(self, step: Step) -> None:
        deadline = None if self.options.timeout is None else self._clock() + self.options.timeout
        entry = step.entry
        try:
            provider = self.provider_for(step.job.model if step.job else entry.model if entry
                                         else "")
        except OctobatchError as exc:  # a model file naming a provider this version lacks
            self._fail(step.job_id, entry.task_id if entry else None, "unknown_provider",
                       str(exc))
        task_id: str | None = None
        if step.action in (Action.POLL, Action.DOWNLOAD) and entry and entry.task_id:
            task_id = entry.task_id
            if entry.status is Status.COMPLETED:
                # The file is missing or damaged, so the job is not complete until it is back.
                self.store.awaiting_task(step.job_id)
        elif step.action is Action.RETRY and entry and entry.task_id and _timed_out(entry):
            # A task that outlived an earlier --timeout may have finished since: look before
            # paying for a new one.
            task_id = await self._reclaim(provider, step.job_id, entry.task_id)
        if task_id is None:
            if not name_fits(self.options.output_dir, step.job_id):
                self._unfinished(step.job_id, None, "the job id is too long to be a file name "
                                 "on this file system; shorten it (nothing was submitted)")
            task_id = await self._submit(provider, step)
            video = await self._await_result(provider, step.job_id, task_id, deadline, fresh=True)
        else:
            video = await self._await_result(provider, step.job_id, task_id, deadline,
                                             fresh=False)
        await self._download(provider, step.job_id, video)

    def provider_for(self, model: str) -> Provider:
        """The provider that serves `model` (its model file says; unknown models: default)."""
        try:
            name = find_model(model, self.options.schema_dir).provider
        except OctobatchError:  # a resumed job whose model file is gone: the default dialect
            name = DEFAULT_PROVIDER
        return self.providers.get(name)

    async def _reclaim(self, provider: Provider, job_id: str, task_id: str) -> str | None:
        """The old task's id if it is still worth waiting for, else None (submit anew)."""
        try:
            video = await provider.poll(task_id)
        except ApiError:
            return None
        if video.state is TaskState.FAILED:
            return None
        self.store.awaiting_task(job_id)
        return task_id

    # -- submission --

    async def _submit(self, provider: Provider, step: Step) -> str:
        job_id, job = step.job_id, step.job
        if job is None:
            raise _Done  # the plan only submits jobs that are in the manifest
        entry = step.entry
        if step.action is Action.UNCERTAIN and entry is not None and entry.idempotency_key:
            key, sent = entry.idempotency_key, entry.attempts
            if entry.status is Status.SUBMITTING:
                # A run died during this POST: it counts against the bound, or repeated
                # crashes could resubmit forever.
                sent += 1
            # The earlier POST (cut off by a crash or a lost answer) may have created a task:
            # whatever this one creates may be a second, paid one.
            self.store.uncertain(job_id, attempts=sent)
            if sent >= self._policy.uncertain_attempts:
                self._fail(job_id, None, "uncertain", _uncertain_message(sent))
        else:
            if step.action not in _FRESH_SUBMIT and step.action is not Action.UNCERTAIN:
                raise _Done
            key, sent = uuid.uuid4().hex, 0
            self.store.pending(job_id, spec_hash=job.spec_hash, model=job.model,
                               spec=job.canonical, idempotency_key=key)
        try:  # reads the job's local files, off the loop, before it is journaled submitting
            request = await asyncio.to_thread(build_request, job,
                                              schema_dir=self.options.schema_dir)
        except InputFileError as exc:  # gone or changed since validation: this job's problem
            self._fail(job_id, None, "input_file", str(exc))
        except (OSError, ValueError) as exc:
            self._fail(job_id, None, "bad_input", f"cannot build the request: {exc}")
        certain_retries = 0  # 429 / refused: nothing was created, so no uncertainty either
        while True:
            self._check_breaker(job_id)
            self.store.submitting(job_id)
            await self.store.sync()
            try:
                video = await _outlast_cancellation(
                    asyncio.ensure_future(self._post(provider, job_id, request, key, sent + 1)))
            except (RateLimited, ConnectionFailed) as exc:
                certain_retries += 1
                kind = "connection" if isinstance(exc, ConnectionFailed) else None
                if kind and self.breaker.failure(kind, "connection failures"):
                    self.emit(ev.SubmissionsStopped(reason=self.breaker.open_reason or ""))
                if certain_retries >= self._policy.submit_attempts:
                    self._give_up_submit(job_id, sent, f"gave up submitting: {exc}")
                await self._wait(job_id, "submit", certain_retries, exc)
                continue
            except AuthError as exc:
                self._stop_submissions(str(exc))
                self._give_up_submit(job_id, sent, "not submitted: " + str(exc))
            except (Ambiguous, ServerError) as exc:
                sent += 1
                self.store.uncertain(job_id, attempts=sent)
                await self.store.sync()
                self.emit(ev.Uncertain(job_id=job_id, attempt=sent, reason=str(exc)))
                if self.breaker.failure(_failure_kind(exc), _failure_kind(exc).replace("_", " ")):
                    self.emit(ev.SubmissionsStopped(reason=self.breaker.open_reason or ""))
                if sent >= self._policy.uncertain_attempts:
                    self._fail(job_id, None, "uncertain", _uncertain_message(sent))
                await self._sleep(self._policy.backoff(sent, self._rng, _retry_after(exc)))
                continue
            except BadRequest as exc:
                # A 400 on submission is an answer: the provider created nothing.
                self.breaker.success()
                self._fail(job_id, None, exc.code or "bad_request", exc.message)
            break
        self.breaker.success()
        sent += 1
        possible_duplicate = self.store.state.jobs[job_id].possible_duplicate
        self.emit(ev.Submitted(job_id=job_id, task_id=video.task_id, attempt=sent,
                               possible_duplicate=possible_duplicate))
        return video.task_id

    async def _post(self, provider: Provider, job_id: str, request: ApiRequest, key: str,
                    attempt: int) -> VideoStatus:
        """Send one submission and journal its task id before anything else happens."""
        video = await provider.submit(request, key)
        self.store.task_recorded(
            job_id,
            task_id=video.task_id,
            status=Status.RUNNING if video.state is TaskState.RUNNING else Status.QUEUED,
            attempts=attempt,
            submitted_at=_now_iso(),
        )
        await self.store.sync()
        return video

    def _check_breaker(self, job_id: str) -> None:
        if self.breaker.is_open:
            entry = self.store.state.jobs[job_id]
            self._give_up_submit(job_id, entry.attempts, "not submitted: submissions are stopped")

    def _give_up_submit(self, job_id: str, sent: int, reason: str) -> None:
        # Nothing was created by the attempts since the last ambiguous one, so the job is as
        # it was before: pending, or uncertain if an earlier POST may have created a task.
        if sent:
            self.store.uncertain(job_id, attempts=sent)
        else:
            self.store.back_to_pending(job_id)
        self.emit(ev.Unfinished(job_id=job_id, task_id=None, reason=reason))
        raise _Done

    def _stop_submissions(self, reason: str) -> None:
        if not self.breaker.is_open:
            self.breaker.trip(reason)
            self.emit(ev.SubmissionsStopped(reason=reason))

    # -- polling --

    async def _await_result(
        self, provider: Provider, job_id: str, task_id: str, deadline: float | None, *,
        fresh: bool,
    ) -> VideoStatus:
        """Poll until the task completes; anything else ends the job for this run."""
        pacer = PollPacer(self.options.poll_interval, self._clock(), fresh=fresh, rng=self._rng)
        delay = pacer.first_delay()
        unknown_polls = 0
        last: tuple[TaskState, int | None] | None = None
        while True:
            if deadline is not None:
                delay = min(delay, max(deadline - self._clock(), 0.0))
            if delay > 0:
                await self._sleep(delay)
            video = await self._call(job_id, "poll", lambda: provider.poll(task_id),
                                     task_id=task_id)
            now = self._clock()
            if video.state is TaskState.COMPLETED:
                self.emit(ev.Completed(job_id=job_id, task_id=task_id))
                return video
            if video.state is TaskState.FAILED:
                error = video.error or {}
                self._fail(job_id, task_id, error.get("code", "failed"),
                           error.get("message", "the provider reported failure"))
            if video.state is TaskState.UNKNOWN:
                unknown_polls += 1
                if unknown_polls == 1:
                    self.emit(ev.UnknownStatus(job_id=job_id, task_id=task_id,
                                               status=video.status_word))
                if unknown_polls >= self._policy.unknown_status_polls:
                    self._unfinished(job_id, task_id, f"the provider kept reporting status "
                                     f"{video.status_word!r}; rerun later to check again")
            else:
                unknown_polls = 0
                status = Status.RUNNING if video.state is TaskState.RUNNING else Status.QUEUED
                self.store.status_seen(job_id, status)  # journals only a change
                if last != (video.state, video.progress):
                    self.emit(ev.Progressed(job_id=job_id, task_id=task_id,
                                            status=video.state.value, progress=video.progress))
                last = (video.state, video.progress)
            if deadline is not None and now >= deadline:
                self._fail(job_id, task_id, "timeout",
                           f"not finished after {self.options.timeout:g} s (--timeout); the "
                           "task id is kept: `--retry-failed` checks it before resubmitting")
            delay = pacer.next_delay(now, video.progress)

    # -- download --

    async def _download(self, provider: Provider, job_id: str, video: VideoStatus) -> None:
        task_id = video.task_id
        url = video.video_url or provider.content_url(task_id)
        final = self.options.output_dir / f"{job_id}.mp4"
        partial = self.options.output_dir / f".{job_id}.mp4.part"
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    got = await provider.download(url, partial)
                    break
                except UrlExpired:
                    if attempt >= self._policy.download_attempts:
                        self._unfinished(job_id, task_id, "the result URL kept failing; rerun "
                                         "to download it again")
                    # Signed links expire: a poll hands out a fresh one. Never resubmit.
                    fresh = await self._call(job_id, "poll", lambda: provider.poll(task_id),
                                             task_id=task_id)
                    url = fresh.video_url or provider.content_url(task_id)
                except (AuthError, PermanentDownloadError) as exc:
                    self._unfinished(job_id, task_id, f"download refused: {exc}")
                except LocalWriteError as exc:
                    self._unfinished(job_id, task_id, str(exc))
                except ApiError as exc:  # truncated, not a video, 5xx, 429, connection trouble
                    if isinstance(exc, TruncatedDownload) \
                            and exc.progressed >= RESUME_AT_ONCE_BYTES:
                        attempt = 0  # the bytes are kept: resume at once; only stuck tries count
                        continue
                    if attempt >= self._policy.download_attempts:
                        self._unfinished(job_id, task_id, f"download failed: {exc}; rerun to "
                                         "download it again (the task is not resubmitted)")
                    await self._wait(job_id, "download", attempt, exc)
            try:
                place(partial, final)
            except LocalWriteError as exc:
                self._unfinished(job_id, task_id, str(exc))
        finally:
            with contextlib.suppress(OSError):  # gone, or a read-only folder: never the run's end
                partial.unlink()
        self.store.completed(
            job_id,
            video_url=url,
            output=os.path.relpath(final, self.store.lock_dir),
            sha256=got.sha256,
            bytes=got.bytes,
            completed_at=_now_iso(),
        )
        # Not awaited: losing this record in a crash costs a second download, never money,
        # and the next sync (another job's, or the end of the run) makes it durable anyway.
        self.emit(ev.Downloaded(job_id=job_id, task_id=task_id,
                                path=os.path.abspath(final),
                                bytes=got.bytes, sha256=got.sha256))

    # -- shared helpers --

    async def _call(
        self,
        job_id: str,
        operation: str,
        request: Callable[[], Awaitable[VideoStatus]],
        *,
        task_id: str | None = None,
    ) -> VideoStatus:
        """A poll with the transient-error policy; permanent errors end the job."""
        attempt = 0
        while True:
            try:
                return await request()
            except TaskNotFound as exc:
                self._fail(job_id, task_id, "task_not_found", exc.message)
            except AuthError as exc:
                self._stop_submissions(str(exc))
                self._unfinished(job_id, task_id, f"cannot poll: {exc}")
            except BadRequest as exc:
                self._fail(job_id, task_id, exc.code or "bad_request", exc.message)
            except ApiError as exc:
                attempt += 1
                if attempt >= self._policy.poll_attempts and not isinstance(exc, RateLimited):
                    self._unfinished(job_id, task_id, f"{operation} kept failing: {exc}")
                await self._wait(job_id, operation, attempt, exc)

    async def _wait(self, job_id: str, operation: str, attempt: int, exc: ApiError) -> None:
        retry_after = _retry_after(exc)
        delay = self._policy.backoff(attempt, self._rng, retry_after)
        if isinstance(exc, RateLimited):
            self.emit(ev.Throttled(job_id=job_id, operation=operation, delay=round(delay, 3),
                                   retry_after=retry_after is not None))
        else:
            self.emit(ev.Retried(job_id=job_id, operation=operation, attempt=attempt,
                                 delay=round(delay, 3), reason=str(exc)))
        await self._sleep(delay)

    def _fail(self, job_id: str, task_id: str | None, code: str, message: str) -> None:
        self.store.failed(job_id, code, message)
        self.emit(ev.Failed(job_id=job_id, task_id=task_id, code=code, message=message))
        raise _Done

    def _unfinished(self, job_id: str, task_id: str | None, reason: str) -> None:
        self.emit(ev.Unfinished(job_id=job_id, task_id=task_id, reason=reason))
        raise _Done


def _timed_out(entry: LockEntry) -> bool:
    return entry.status is Status.FAILED and (entry.error or {}).get("code") == "timeout"


def _retry_after(exc: ApiError) -> float | None:
    return exc.retry_after if isinstance(exc, (RateLimited, ServerError)) else None


def _failure_kind(exc: ApiError) -> str:
    return "server_errors" if isinstance(exc, ServerError) else "dropped_connections"


def _uncertain_message(sent: int) -> str:
    return (f"{sent} submissions got no clear answer, so the provider may hold one or more "
            "tasks for this job that octobatch never heard about; check the provider's "
            "dashboard before `--retry-failed` (which submits it again)")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _outlast_cancellation(task: asyncio.Future[VideoStatus]) -> VideoStatus:
    """The result of `task`, which is left to finish even if the caller is cancelled meanwhile.

    A submission's answer may be a paid task id: abandoning it on Ctrl-C would make the next
    run pay again, so the POST and its journal record complete first (the client's timeouts
    bound the wait) and the cancellation is re-raised after. A second Ctrl-C still exits at once.
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
