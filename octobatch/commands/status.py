"""`octobatch status MANIFEST`: each job's state from the lockfile and journal, no network.

Besides the recorded state it says what the next run would do where the manifest and the
lockfile disagree (new, changed, orphaned jobs, missing files), which is what a `git pull`
that touched the manifest needs. An invalid manifest does not hide the recorded state.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octobatch.errors import EXIT_OK, ManifestError, UsageError
from octobatch.manifest import load_manifest
from octobatch.paths import absolute, from_lockfile, shown
from octobatch.plan import Action, Step, plan_manifest
from octobatch.selection import check_globs, matches
from octobatch.selection import only as select_only
from octobatch.state import LockEntry, LockState, Status, load_state, lock_path_for


@dataclass(frozen=True)
class StatusReport:
    manifest: Path
    lock_path: Path
    lock_exists: bool
    jobs: tuple[tuple[str, LockEntry], ...]  # manifest order first, then lockfile-only jobs
    next_run: tuple[Step, ...] | None  # steps that do something; None if the manifest is invalid
    manifest_errors: tuple[str, ...]


def main(args: argparse.Namespace) -> int:
    report = collect(Path(args.manifest), allow_outside_files=args.allow_outside_files,
                     allow_outside_output=args.allow_outside_output, only=args.only)
    if args.json:
        json.dump(to_json(report), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return EXIT_OK


def collect(path: Path, *, allow_outside_files: bool = False,
            allow_outside_output: bool = False,
            only: Sequence[str] | None = None) -> StatusReport:
    lock_path = lock_path_for(path)
    if not path.exists() and not lock_path.exists():
        raise UsageError(f"{path}: no such manifest, and no lockfile beside it")
    state = load_state(path)
    try:
        manifest = load_manifest(path, allow_outside_files=allow_outside_files,
                                 allow_outside_output=allow_outside_output)
    except ManifestError as exc:
        check_globs(only, state.jobs, str(path))
        return StatusReport(path, lock_path, lock_path.exists(), _ordered(state, (), only), None,
                            tuple(map(str, exc.diagnostics)))
    ids = [job.id for job in manifest.jobs]
    check_globs(only, [*ids, *(i for i in state.jobs if i not in set(ids))], str(path))
    plan = select_only(plan_manifest(manifest, state), only)
    return StatusReport(
        path,
        lock_path,
        lock_path.exists(),
        _ordered(state, ids, only),
        tuple(step for step in plan.steps if step.action is not Action.SKIP),
        (),
    )


def _ordered(state: LockState, manifest_ids: Any,
             only: Sequence[str] | None = None) -> tuple[tuple[str, LockEntry], ...]:
    ids = [i for i in manifest_ids if i in state.jobs]
    ids += sorted(set(state.jobs) - set(ids))
    return tuple((i, state.jobs[i]) for i in ids if matches(i, only))


def _counts(report: StatusReport) -> dict[str, int]:
    counts = Counter(entry.status.value for _, entry in report.jobs)
    return {status.value: counts[status.value] for status in Status if counts[status.value]}


def _error_text(entry: LockEntry) -> str:
    if not entry.error:
        return ""
    code, message = entry.error.get("code"), entry.error.get("message")
    return ": ".join(str(part) for part in (code, message) if part)


def _output(report: StatusReport, entry: LockEntry, write: Callable[[Path], str]) -> str | None:
    path = from_lockfile(report.lock_path, entry.output)
    return None if path is None else write(path)


def _changed(step: Step) -> list[str]:
    return sorted(step.changed or ())


def to_json(report: StatusReport) -> dict[str, Any]:
    return {
        "manifest": absolute(report.manifest),
        "lockfile": absolute(report.lock_path),
        "lockfile_exists": report.lock_exists,
        "counts": _counts(report),
        "jobs": [
            {
                "id": job_id,
                "status": entry.status.value,
                "task_id": entry.task_id,
                "output": _output(report, entry, absolute),
                "error": entry.error,
                "attempts": entry.attempts,
                "possible_duplicate": entry.possible_duplicate,
            }
            for job_id, entry in report.jobs
        ],
        "manifest_errors": list(report.manifest_errors),
        "next_run": None if report.next_run is None else [
            {"id": step.job_id, "action": step.action.value, "reason": step.reason,
             "changed": _changed(step)}
            for step in report.next_run
        ],
    }


def render(report: StatusReport) -> str:
    lines = [f"{shown(report.manifest)} (lockfile {report.lock_path.name})"]
    if not report.lock_exists and not report.jobs:
        lines.append("no recorded state yet: nothing has been run")
    else:
        counts = ", ".join(f"{n} {status}" for status, n in _counts(report).items())
        total = len(report.jobs)
        lines.append(f"{total} job{'s' if total != 1 else ''} recorded" + (f": {counts}" if counts else ""))
        rows = [
            (job_id,
             entry.status.value + (" (possible duplicate)" if entry.possible_duplicate else ""),
             entry.task_id or "-",
             _output(report, entry, shown) or "-",
             _error_text(entry))
            for job_id, entry in report.jobs
        ]
        lines += _table(rows)
    lines.append("")
    if report.next_run is None:
        n = len(report.manifest_errors)
        lines.append(f"{shown(report.manifest)} has {n} error{'s' if n != 1 else ''}, so what "
                     "the next run would do is unknown:")
        lines += report.manifest_errors
    elif not report.next_run:
        lines.append("next run: nothing to do, every job is completed and its file is in place")
    else:
        by_action = Counter(step.action.value for step in report.next_run)
        lines.append("next run: " + ", ".join(f"{n} {a}" for a, n in by_action.items()))
        lines += _table([(step.action.value, step.job_id, step.reason) for step in report.next_run])
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip()
            for row in rows]
