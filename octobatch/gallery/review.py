"""Recording a person's decision about a job, and choosing which of its takes is the result.

Each decision is one short write under the manifest's run lock: open the store (which takes
the lock), journal the change, close (which folds the journal into the lockfile and releases
the lock). So the committed lockfile shows every decision at once in `git diff`, and a
decision never races a run: while a run holds the lock the write is refused (`RunInProgress`)
and the page says so, and a run started meanwhile waits for nothing longer than one write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from octobatch.errors import StateError
from octobatch.state import LockEntry, StateStore
from octobatch.state.entry import DECISIONS, Decision
from octobatch.takes import select_take


class ReviewError(Exception):
    """A review request that cannot be carried out; `status` is the HTTP status it maps to."""

    status = 400


class UnknownJob(ReviewError):
    status = 404


class RunInProgress(ReviewError):
    status = 409


@dataclass(frozen=True)
class ReviewRequest:
    decision: Decision | None
    take: int | None


def parse_request(body: Any) -> ReviewRequest:
    """Check a request body: `{"decision": "approved" | "rejected" | null, "take": <int>}`."""
    if not isinstance(body, Mapping):
        raise ReviewError('expected a JSON object such as {"decision": "approved"}')
    unknown = sorted(set(body) - {"decision", "take"})
    if unknown:
        raise ReviewError(f"unknown field {unknown[0]!r}: only 'decision' and 'take' are accepted")
    if "decision" not in body:
        raise ReviewError("missing 'decision': one of \"approved\", \"rejected\" or null")
    decision = body["decision"]
    if decision is not None and decision not in DECISIONS:
        raise ReviewError(f"decision: {decision!r} is not one of \"approved\", \"rejected\", null")
    take = body.get("take")
    if take is not None and (isinstance(take, bool) or not isinstance(take, int) or take < 1):
        raise ReviewError(f"take: expected a take number (1, 2, ...), got {take!r}")
    return ReviewRequest(decision=decision, take=take)


def record_review(manifest: Path, job_id: str, request: ReviewRequest,
                  *, output_dir: Path | None = None, now: datetime | None = None) -> LockEntry:
    """Apply `request` to `job_id` in the manifest's lockfile; return the updated entry.
    A take is moved into place only inside `output_dir` (see `select_take`)."""
    try:
        store = StateStore.open(manifest)
    except StateError as exc:
        if "another octobatch run" in str(exc):
            raise RunInProgress(f"{exc}; the decision was not saved, try again when it ends") from None
        raise
    try:
        entry = store.state.jobs.get(job_id)
        if entry is None:
            raise UnknownJob(f"no job {job_id!r} in {store.lock_path.name}: only jobs a run has "
                             "recorded can be reviewed")
        numbers = [t.take for t in entry.take_history()]
        if request.take is not None and request.take not in numbers:
            have = ", ".join(map(str, numbers)) or "none yet"
            raise ReviewError(f"job {job_id!r} has no take {request.take} (takes: {have})")
        if request.take is not None:
            try:
                select_take(store, job_id, request.take, folder=output_dir)
            except ValueError as exc:
                raise ReviewError(str(exc)) from None
            except OSError as exc:
                raise StateError(f"{exc.filename or job_id}: cannot move take {request.take} "
                                 f"into place: {exc.strerror}") from None
        selected = store.state.jobs[job_id].selected
        take = request.take if request.take is not None else (selected.take if selected else None)
        at = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
        store.reviewed(job_id, decision=request.decision, take=take, at=at)
        return store.state.jobs[job_id]
    finally:
        store.close()  # syncs, folds the journal into the lockfile, releases the run lock


def job_json(job_id: str, entry: LockEntry) -> dict[str, Any]:
    """The job as the review API answers it: its id and its lockfile entry."""
    return {"id": job_id, **entry.to_json()}
