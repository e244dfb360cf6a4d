"""What a run would do with each job, and why: a pure function of (jobs, lockfile, outputs).

The engine acts on these steps; `plan` prints them. Only the `observe_` functions touch the disk,
so the rules themselves are tested without files.
"""

from __future__ import annotations

import enum
import fnmatch
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octobatch.jobs import JobSpec
from octobatch.owned import aside_in_the_way, in_the_way
from octobatch.state import LockEntry, LockState, Status

if TYPE_CHECKING:
    from octobatch.manifest import Manifest


class Action(str, enum.Enum):
    SUBMIT = "submit"
    POLL = "poll"
    DOWNLOAD = "download"
    SKIP = "skip"
    REGENERATE = "regenerate"
    RETRY = "retry"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    ORPHAN = "orphan"
    # The job's output name holds a file octobatch did not write for it: nothing is submitted
    # or downloaded for the job until that file is moved away.
    BLOCKED = "blocked"


# How a regeneration of a completed job says that its video is not lost.
_KEPT = "; a new take, the current video is kept as an earlier take"

# Actions that create (or may have created) a paid generation.
COSTLY = frozenset({Action.SUBMIT, Action.REGENERATE, Action.RETRY, Action.UNCERTAIN})


@dataclass(frozen=True)
class Step:
    job_id: str
    action: Action
    reason: str
    job: JobSpec | None  # None for orphans
    entry: LockEntry | None  # None for new jobs
    changed: tuple[str, ...] = ()  # fields that differ from the lockfile (regenerate)
    # Takes this step submits: a costly action's own submission plus, for a job with fewer
    # completed takes of its spec than `takes: N` asks for, the missing ones after it.
    takes: int = 0


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    def counts(self) -> dict[Action, int]:
        counts = dict.fromkeys(Action, 0)
        for step in self.steps:
            counts[step.action] += 1
        return counts

    def seconds_by_model(self) -> dict[str, int]:
        """Seconds of video the run would generate, per model and take (jobs without seconds
        count 0)."""
        totals: dict[str, int] = {}
        for step in self.steps:
            if step.takes and step.job is not None:
                model = step.job.model
                totals[model] = totals.get(model, 0) + (step.job.seconds or 0) * step.takes
        return totals

    def costly(self) -> int:
        """How many jobs would (or may already) cost a generation."""
        return sum(1 for step in self.steps if step.takes)

    def submissions(self) -> int:
        """How many takes the run would submit (each one a paid generation)."""
        return sum(step.takes for step in self.steps)


def make_plan(
    jobs: Sequence[JobSpec],
    state: LockState,
    outputs: Mapping[str, int | None],
    *,
    retry_failed: bool = False,
    replace: Sequence[str] = (),
    replace_rejected: bool = False,
    blocked: Mapping[str, Blocker] | None = None,
) -> Plan:
    """One step per job (manifest order), then one per lockfile entry no job claims.

    `replace` (shell-style globs on job ids) and `replace_rejected` regenerate completed jobs
    as a new take; the current video is kept as an earlier take. `blocked`: job id -> why a
    file where the job's video lives (or would go) is not octobatch's to replace.
    """
    blocked = blocked or {}
    steps = [_blocked(_step(job, state.jobs.get(job.id), outputs.get(job.id), retry_failed,
                            _replacement(job.id, state.jobs.get(job.id), replace,
                                         replace_rejected)),
                      blocked.get(job.id), outputs.get(job.id))
             for job in jobs]
    wanted = {job.id for job in jobs}
    steps.extend(
        Step(job_id, Action.ORPHAN, "not in the manifest; kept until run --prune", None, entry)
        for job_id, entry in state.jobs.items()
        if job_id not in wanted
    )
    return Plan(tuple(steps))


def _replacement(job_id: str, entry: LockEntry | None, globs: Sequence[str],
                 rejected: bool) -> str | None:
    """Why a completed job is to be generated again although nothing changed, if it is."""
    if entry is None or entry.status is not Status.COMPLETED:
        return None
    if any(fnmatch.fnmatchcase(job_id, glob) for glob in globs):
        return "replacement requested (--replace)"
    if rejected and entry.decision == "rejected":
        return "rejected in review (--replace-rejected)"
    return None


def _blocked(step: Step, blocker: Blocker | None, on_disk: int | None) -> Step:
    """`step`, unless a file octobatch must not replace stands where it would write.

    Only what the plan can judge: a costly step (nothing is paid for a video that could not
    be placed) and a completed job's own recorded file. A job with a task at the provider is
    judged when its download arrives, against the downloaded bytes: after a kill -9 between
    placing a file and recording it, the file at its name is the job's own.
    """
    if blocker is None:
        return step
    costly = step.action in COSTLY
    if blocker.new_takes_only and not costly:
        return step
    if not (costly or step.action is Action.SKIP
            or (step.action is Action.DOWNLOAD and on_disk is not None)):
        return step
    return Step(step.job_id, Action.BLOCKED, blocker.reason, step.job, step.entry, step.changed)


def _step(job: JobSpec, entry: LockEntry | None, on_disk: int | None, retry_failed: bool,
          replacement: str | None = None) -> Step:
    have = _takes_done(job, entry)
    missing = max(job.takes - have, 0)

    def step(action: Action, reason: str, changed: tuple[str, ...] = ()) -> Step:
        # A costly action submits at least its own take; any other submits only missing ones
        # after it (a poll's task is one of them already).
        takes = max(missing, 1) if action in COSTLY else 0
        if action in (Action.POLL, Action.DOWNLOAD):
            takes = max(missing - (action is Action.POLL), 0)
        if job.takes > 1 and takes:
            reason += ("; then" if action not in COSTLY else ";") + _more_takes(
                job.takes, have, takes)
        return Step(job.id, action, reason, job, entry, changed, takes)

    if entry is None or entry.status is Status.PENDING:
        return step(Action.SUBMIT, "new job" if not have else "the next take was not submitted yet")
    if entry.spec_hash != job.spec_hash:
        changed = changed_fields(job.canonical, entry.spec)
        what = ", ".join(changed) if changed else "the spec"
        return step(Action.REGENERATE, f"changed: {what}", changed)
    if replacement is not None:
        return step(Action.REGENERATE, replacement + _KEPT)
    status = entry.status
    if status is Status.COMPLETED:
        if on_disk is not None and on_disk == entry.bytes:
            if missing:
                return step(Action.SUBMIT, "more takes wanted")
            return step(Action.SKIP, "up to date")
        if on_disk is None:
            return step(Action.DOWNLOAD, "completed, but the file is missing")
        return step(Action.DOWNLOAD, f"completed, but the file has {on_disk} bytes, "
                    f"not {entry.bytes}")
    if status in (Status.QUEUED, Status.RUNNING) and entry.task_id:
        return step(Action.POLL, f"{status.value} at the provider (task {entry.task_id})")
    if status is Status.FAILED:
        error = (entry.error or {}).get("message") or "no reason given"
        if retry_failed:
            return step(Action.RETRY, f"failed before ({error}); retrying")
        return step(Action.FAILED, f"failed: {error}; use --retry-failed to resubmit")
    # submitting without a task id, uncertain, or queued/running with no task id to poll: the
    # POST may have created a task we never heard about.
    return step(Action.UNCERTAIN, "a submission may have created a task; possible duplicate")


def _takes_done(job: JobSpec, entry: LockEntry | None) -> int:
    """Completed takes of the job's current spec (takes of an earlier spec do not count)."""
    if entry is None:
        return 0
    done = sum(1 for take in entry.take_history() if take.spec_hash == job.spec_hash)
    if entry.status is Status.COMPLETED and entry.spec_hash == job.spec_hash:
        return max(done, 1)  # a completed entry is one take, even with no history recorded
    return done


def _more_takes(wanted: int, have: int, takes: int) -> str:
    """` submit 2 more takes (1 of 3 done)`: what a step submits for `takes: N`."""
    more = " more" if have or takes < wanted else ""
    return f" submit {takes}{more} take{'s' if takes != 1 else ''} ({have} of {wanted} done)"


def changed_fields(new: Mapping[str, Any], old: Mapping[str, Any]) -> tuple[str, ...]:
    """Names of the fields (model included) whose values differ, sorted."""
    return tuple(sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k)))


def observe_outputs(lock_dir: Path, state: LockState) -> dict[str, int | None]:
    """Size on disk of each entry's output file (relative to the lockfile), None if missing."""
    sizes: dict[str, int | None] = {}
    for job_id, entry in state.jobs.items():
        info = None
        if entry.output:
            try:
                info = (lock_dir / entry.output).stat()
            except OSError:  # missing or unreadable: either way it has to be fetched again
                info = None
        sizes[job_id] = info.st_size if info and stat.S_ISREG(info.st_mode) else None
    return sizes


@dataclass(frozen=True)
class Blocker:
    """A file octobatch must not replace, standing where a job's video lives or would go."""

    reason: str
    # Only in the way of a new take: the name the current video would move aside to.
    new_takes_only: bool = False


def observe_blocked(jobs: Sequence[JobSpec], state: LockState, lock_dir: Path,
                    output_dir: Path) -> dict[str, Blocker]:
    """Job id -> the file in the way of its video: a completed job's recorded file when it is
    there (else `<output_dir>/<id>.mp4`) if it is not the job's own, or a file at the name
    its current video would move aside to for a new take.

    Only files that exist are looked at, and only a file modified after its take completed is
    read (see `octobatch.owned`).
    """
    blocked: dict[str, Blocker] = {}
    for job in jobs:
        entry = state.jobs.get(job.id)
        path = output_dir / f"{job.id}.mp4"
        if entry is not None and entry.status is Status.COMPLETED and entry.output:
            recorded = Path(os.path.abspath(lock_dir / entry.output))
            if os.path.lexists(recorded):
                path = recorded  # its file decides between up to date and blocked
        reason = in_the_way(path, entry, lock_dir)
        if reason is not None:
            blocked[job.id] = Blocker(reason)
        elif entry is not None and (reason := aside_in_the_way(entry, path, lock_dir)):
            blocked[job.id] = Blocker(reason, new_takes_only=True)
    return blocked


def plan_manifest(manifest: Manifest, state: LockState, *, retry_failed: bool = False,
                  replace: Sequence[str] = (), replace_rejected: bool = False) -> Plan:
    """`make_plan` for a loaded manifest, with its output files looked at on disk."""
    lock_dir = manifest.lock_path.parent
    outputs = observe_outputs(lock_dir, state)
    blocked = observe_blocked(manifest.jobs, state, lock_dir, manifest.output_dir)
    return make_plan(manifest.jobs, state, outputs, retry_failed=retry_failed, replace=replace,
                     replace_rejected=replace_rejected, blocked=blocked)
