"""Submitting one job: the part that costs money, journaled so no crash pays twice.

Every state change goes through the state store, and the ones that matter for money are
synced before the job moves on: `submitting` + Idempotency-Key before the POST, then the
answer's meaning (a task id, nothing created, maybe created) right after it, recorded inside
the part a cancellation cannot cut short (a task id's sync runs while the first poll interval
passes; the task is polled, and announced, only once it is done). So a crash at any moment
leaves a task id to poll, a `pending` job (nothing was created), or an `uncertain` one to
resubmit with the same key; a job that waits (for a slot, a rate limit, an outage) is never
left `submitting`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
from typing import NoReturn

from octobatch import progress as ev
from octobatch.engine.context import (
    Done,
    JobBase,
    now_iso,
    retry_after_of,
)
from octobatch.engine.decisions import Then, submit_verdict
from octobatch.engine.slots import Stopped
from octobatch.errors import OctobatchError
from octobatch.inputs import InputFileError
from octobatch.jobs import ApiRequest
from octobatch.models import build_request
from octobatch.outlast import outlast_cancellation
from octobatch.plan import Action
from octobatch.providers.base import TaskState, VideoStatus
from octobatch.state import Status
from octobatch.transport import ApiError, ConnectionFailed

_FRESH_SUBMIT = (Action.SUBMIT, Action.REGENERATE, Action.RETRY)

# What a job waiting to be submitted until its --timeout was waiting for.
_WAITED_FOR = {
    "provider_slot": "the provider's task limit for this key was reached",
    "rate_limit": "the provider kept rate-limiting this key",
    "outage": "the provider did not answer",
}

_CAPPED = "the cost cap is reached"

# Idempotency keys: 128 random bits each, drawn without a system call per key (one would hand
# the GIL to a file thread in the middle of the event loop's turn). Seeded from os.urandom; a
# forked child reseeds, so it never repeats its parent's keys.
_keys = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_keys.seed)


def new_idempotency_key() -> str:
    return f"{_keys.getrandbits(128):032x}"


class Submission(JobBase):
    """Submits the job once, as the plan says (fresh, or resubmitted with its key)."""

    async def _submit(self) -> tuple[str, asyncio.Future[None]]:
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
            key, sent = new_idempotency_key(), 0
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
            cost = self._within_budget(sent)  # checked and counted with no await in between
            self.store.submitting(self.job_id, cost=cost)
            self.store.sync_soon()  # on its way to the disk while the POST's task starts
            try:
                video = await outlast_cancellation(
                    asyncio.ensure_future(self._post(request, key, sent, cost)))
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
                    await self._pause(self.policy.backoff(sent, self.ctx.rng, retry_after_of(exc)))
                    continue
                self.gate.not_created(answered=not isinstance(exc, ConnectionFailed))
                refusals += 1
                await self._after_nothing_created(verdict.then, exc, sent, refusals)
                continue
            break
        self.gate.created()
        self.ctx.reach.answer()
        possible_duplicate = self.store.state.jobs[job_id].possible_duplicate
        submitted = ev.Submitted(job_id=job_id, task_id=video.task_id, attempt=sent + 1,
                                 possible_duplicate=possible_duplicate)
        # The task id's record is on its way to the disk (sync_soon above); the job polls,
        # and says it was submitted, once it is there: nothing happens with a task id before
        # it is in the journal on disk.
        journaled = self.store.durable()
        journaled.add_done_callback(functools.partial(self._announce, submitted))
        return video.task_id, journaled

    def _announce(self, submitted: ev.Submitted, journaled: asyncio.Future[None]) -> None:
        if journaled.cancelled():  # the job was cancelled meanwhile; the write goes on
            self.store.durable().add_done_callback(functools.partial(self._announce, submitted))
        elif journaled.exception() is None:  # else the run ends on the journal's error
            self.ctx.emit(submitted)

    async def _admit(self, sent: int) -> None:
        """Wait for the gate (a provider slot, a rate-limit pause, the breaker), saying why."""
        reason = self.gate.blocked_by()
        if reason is not None and reason != self._waiting_for:
            self.ctx.emit(ev.Waiting(job_id=self.job_id, reason=reason))
        self._waiting_for = reason
        remaining = None if self.deadline is None else self.deadline - self.ctx.clock()
        try:
            if remaining is None:
                await self.gate.admit()
            else:
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
            retry_after = retry_after_of(exc)
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

    async def _post(self, request: ApiRequest, key: str, sent: int,
                    cost: float) -> VideoStatus:
        """Send one submission, once `submitting` (which counted its `cost`) is durable, and
        journal what its answer means before anything else (a task id's record is synced by
        `_journal`, the others here)."""
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
            submitted_at=now_iso(),
        )
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

    def _give_up_submit(self, sent: int, reason: str) -> NoReturn:
        # Nothing was created by the attempts since the last ambiguous one, so the job is as
        # it was before: pending, or uncertain if an earlier POST may have created a task.
        self._nothing_sent(sent)
        self.ctx.emit(ev.NotSubmitted(job_id=self.job_id, task_id=None, reason=reason))
        raise Done


def _uncertain_message(sent: int) -> str:
    return (f"{sent} submissions got no clear answer, so the provider may hold one or more "
            "tasks for this job that octobatch never heard about; check the provider's "
            "dashboard before `--retry-failed` (which submits it again)")
