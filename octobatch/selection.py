"""`--only GLOB`: act on the jobs whose ids match any of the shell-style globs given."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import replace

from octobatch.errors import UsageError
from octobatch.plan import Plan


def matches(job_id: str, globs: Sequence[str] | None) -> bool:
    """No globs select everything; case matters, as it does in job ids."""
    return not globs or any(fnmatch.fnmatchcase(job_id, glob) for glob in globs)


def only(plan: Plan, globs: Sequence[str] | None) -> Plan:
    """The plan's steps for the selected jobs (orphans included when they match)."""
    if not globs:
        return plan
    return replace(plan, steps=tuple(s for s in plan.steps if matches(s.job_id, globs)))


def check_globs(globs: Sequence[str] | None, ids: Iterable[str], where: str,
                flag: str = "--only") -> None:
    """A glob that matches no job is a typo until proven otherwise: say so before any work."""
    if not globs:
        return
    known = list(ids)
    unmatched = [g for g in globs if not any(fnmatch.fnmatchcase(i, g) for i in known)]
    if unmatched:
        sample = ", ".join(known[:5]) + (", ..." if len(known) > 5 else "")
        raise UsageError(
            f"{flag} {' '.join(repr(g) for g in unmatched)} matches no job in {where} "
            f"(job ids: {sample or 'none'}); globs are shell-style: * ? [abc]")
