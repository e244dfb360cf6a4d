"""The run engine: carry out a plan with a bounded pool of workers, one job at a time each.

At most `concurrency` jobs are in flight at once (submitted and not yet downloaded); their
submissions, polls and downloads overlap freely. New submissions also pass their provider's
`SubmitGate` (learned task limit, rate-limit pauses, the breaker); polls and downloads never
wait for it. With `deadline` set, the run stops waiting when it passes.

The engine never prints: it reports through `emit` and returns a `RunResult`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from octobatch import progress as ev
from octobatch.download import check_output_dir
from octobatch.engine.context import Clock, Done, Reach, RunContext, Sleep
from octobatch.engine.job import JobRun
from octobatch.engine.options import EngineOptions, RunResult
from octobatch.engine.slots import SubmitGate
from octobatch.errors import OctobatchError
from octobatch.models import find_model
from octobatch.plan import COSTLY, Action, Plan, Step
from octobatch.providers.base import DEFAULT_PROVIDER, Provider, ProviderSource
from octobatch.state import StateStore, Status

_IN_FLIGHT = (Status.QUEUED, Status.RUNNING)
_ENDED = (Status.COMPLETED, Status.FAILED)


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
        self._ctx = RunContext(store=store, options=options, emit=emit, sleep=sleep,
                               clock=clock, rng=rng or random.Random(),
                               reach=Reach(options.retry.breaker_threshold))
        self._gates: dict[str, SubmitGate] = {}
        # Jobs whose file is in the way: unfinished, whatever their lockfile status says.
        self._blocked: set[str] = set()

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
            elif step.action is Action.BLOCKED:
                self._blocked.add(step.job_id)
                self.emit(ev.Unfinished(job_id=step.job_id,
                                        task_id=step.entry.task_id if step.entry else None,
                                        reason=step.reason))
            elif step.action is Action.ORPHAN:
                if self.options.prune:
                    self.store.remove(step.job_id)
                    self.emit(ev.Pruned(job_id=step.job_id))
            else:
                active.append(step)
        deadline_passed = await self._run_workers(active)
        await self.store.sync()
        result = self.result([s.job_id for s in steps if s.action is not Action.ORPHAN])
        if deadline_passed:
            self.emit(ev.DeadlinePassed(deadline=self.options.deadline or 0.0,
                                        unfinished=result.unfinished))
        self.emit(ev.RunFinished(
            manifest=self.store.manifest_path.name,
            completed=result.completed,
            failed=result.failed,
            unfinished=result.unfinished,
            running_at_provider=result.running_at_provider,
            possible_duplicates=list(result.possible_duplicates),
            learned_limit=result.learned_limit,
            not_submitted=result.not_submitted,
        ))
        return result

    async def _run_workers(self, steps: Sequence[Step]) -> bool:
        """Work through `steps`; False when all ended, True when the run deadline came first."""
        # A fixed pool of workers pulling from a queue bounds jobs in flight without creating
        # one waiting coroutine per job (10,000-job manifests stay small in memory).
        queue: asyncio.Queue[Step] = asyncio.Queue()
        for step in steps:
            queue.put_nowait(step)

        async def worker() -> None:
            while not queue.empty():
                step = queue.get_nowait()
                try:
                    await self._process(step)
                except Done:
                    pass

        workers = [asyncio.create_task(worker())
                   for _ in range(min(self.options.concurrency, len(steps)))]
        if not workers:
            return False
        try:
            done, pending = await asyncio.wait(workers, timeout=self.options.deadline)
            for task in done:
                task.result()  # a bug in a job surfaces here, not silently
            return bool(pending)
        finally:
            # At the deadline (or on Ctrl-C) the rest is cancelled: a POST on the wire is let
            # finish and journaled; a job that was waiting is `pending` (or `uncertain`)
            # in the journal already.
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _process(self, step: Step) -> None:
        entry = step.entry
        try:
            provider = self.provider_for(step.job.model if step.job else entry.model if entry
                                         else "")
        except OctobatchError as exc:  # a model file naming a provider this version lacks
            if entry is not None:
                self.store.failed(step.job_id, "unknown_provider", str(exc))
            self.emit(ev.Failed(job_id=step.job_id, task_id=entry.task_id if entry else None,
                                code="unknown_provider", message=str(exc)))
            return
        gate = self._gate(provider)
        # `takes: N`: the job's one lockfile entry follows one task at a time, so its missing
        # takes are submitted one after another, each once the one before it is complete.
        more = step.takes - (step.action in COSTLY)
        while True:
            try:
                await JobRun(self._ctx, step, provider, gate).run()
            except Done:
                pass
            entry = self.store.state.jobs.get(step.job_id)
            if more <= 0 or entry is None or entry.status is not Status.COMPLETED:
                return  # failed, capped or unfinished: the next run's plan takes it from here
            more -= 1
            step = replace(step, action=Action.SUBMIT, entry=entry)

    def provider_for(self, model: str) -> Provider:
        """The provider that serves `model` (its model file says; unknown models: default)."""
        try:
            name = find_model(model, self.options.schema_dir).provider
        except OctobatchError:  # a resumed job whose model file is gone: the default dialect
            name = DEFAULT_PROVIDER
        return self.providers.get(name)

    def _gate(self, provider: Provider) -> SubmitGate:
        gate = self._gates.get(provider.name)
        if gate is None:
            gate = self._gates[provider.name] = SubmitGate(
                self.options.concurrency, self.options.retry, self._ctx.clock, self._ctx.rng)
        return gate

    # -- the tally --

    def result(self, job_ids: Sequence[str]) -> RunResult:
        """Tally the store's state for `job_ids` (also used after an interrupted run)."""
        counts: Counter[Status] = Counter()
        duplicates = []
        running = not_submitted = 0
        for job_id in job_ids:
            entry = self.store.state.jobs.get(job_id)
            if job_id in self._blocked:  # unfinished: its video is not where it belongs
                counts[Status.PENDING] += 1
                running += entry is not None and bool(entry.task_id) \
                    and entry.status in _IN_FLIGHT
                continue
            if entry is None:
                counts[Status.PENDING] += 1
                not_submitted += 1
                continue
            not_submitted += not entry.task_id and entry.status not in _ENDED
            counts[entry.status] += 1
            if entry.possible_duplicate:
                duplicates.append(job_id)
            running += bool(entry.task_id) and entry.status in _IN_FLIGHT
        completed, failed = counts[Status.COMPLETED], counts[Status.FAILED]
        stopped = [g.breaker.stopped for g in self._gates.values() if g.breaker.stopped]
        limits = [g.limit for g in self._gates.values() if g.limit is not None]
        return RunResult(
            completed=completed,
            failed=failed,
            unfinished=len(job_ids) - completed - failed,
            running_at_provider=running,
            possible_duplicates=tuple(sorted(duplicates)),
            submissions_stopped=stopped[0] if stopped else None,
            learned_limit=min(limits) if limits else None,
            not_submitted=not_submitted,
            spent=self.store.spent,
            blocked=sum(1 for job_id in job_ids if job_id in self._blocked),
        )

    @property
    def rejected_submissions(self) -> int:
        """429s for a key's task limit over the run (benchmarks report it per job)."""
        return sum(g.refusals for g in self._gates.values())
