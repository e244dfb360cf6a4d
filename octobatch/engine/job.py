"""One job's protocol for one run: submit (or take up its task), wait for the task, download.

The phases live beside it: `submission.py` (the money part, journaled so no crash pays
twice), `retrieval.py` (polling and the download); `context.py` holds what they share.
"""

from __future__ import annotations

from typing import NoReturn

from octobatch.download import name_fits
from octobatch.engine.context import Done
from octobatch.engine.retrieval import Retrieval
from octobatch.engine.submission import Submission
from octobatch.plan import Action
from octobatch.providers.base import TaskState
from octobatch.state import LockEntry, Status
from octobatch.transport import ApiError


class JobRun(Submission, Retrieval):
    """The protocol of one job: `await JobRun(...).run()` ends it for this run (raises Done)."""

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
            # Holds a slot of the gate from here; the task id's journal record is synced
            # while the first poll interval passes, and before that poll.
            task_id, journaled = await self._submit()
            fresh = True
        else:
            journaled = None
            self.gate.known_task()
        try:
            video = await self._await_result(task_id, fresh=fresh, journaled=journaled)
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


def _timed_out(entry: LockEntry) -> bool:
    return entry.status is Status.FAILED and (entry.error or {}).get("code") == "timeout"
