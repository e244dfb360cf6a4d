"""Job ids: their rule, and the register that keeps them unique within a manifest."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from octobatch.jobs import Position
from octobatch.manifest.report import Reporter
from octobatch.manifest.yamlpos import DocPath
from octobatch.schemas import show

if TYPE_CHECKING:
    from octobatch.manifest.expand import Draft

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ID_RULE = "ids start with a letter or digit and contain only letters, digits, '.', '_' and '-'"
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9._-]+")


def id_safe(text: str) -> str:
    """A matrix value as part of an id: `16:9` -> `16-9`."""
    return _NOT_IN_ID.sub("-", text)


# An id names `<id>.mp4` and, while it downloads, `.<id>.mp4.part`; file systems take names
# of at most 255 bytes. Refused here, before anything is paid for, not at download time.
MAX_ID_LENGTH = 255 - len("..mp4.part")


def id_problem(job_id: str) -> tuple[str, str] | None:
    """(message, hint) when `job_id` cannot be an id, else None."""
    if not ID_PATTERN.fullmatch(job_id):
        return f"invalid id {show(job_id)}", ID_RULE
    if len(job_id) > MAX_ID_LENGTH:
        return (f"the id is {len(job_id)} characters long; at most {MAX_ID_LENGTH} fit in a file "
                "name", "a download is saved as .<id>.mp4.part, and a file name holds at most "
                "255 bytes; shorten it")
    return None


class IdRegister:
    """Which manifest entry produced each job id, so that a second use is reported there."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._first: dict[str, tuple[DocPath, Position | None]] = {}

    def claim(self, job_id: str, draft: Draft, *, derived: bool) -> bool:
        """Record that `draft` produced `job_id`; False (reported) if another job has it."""
        first = self._first.get(job_id)
        if first is None:
            self._first[job_id] = (draft.where, draft.source)
            return True
        where, row = first
        if (where, row) == (draft.where, draft.source):  # two combinations of one matrix
            message = (f"the matrix makes identical jobs ('{job_id}')" if derived
                       else f"the matrix gives several jobs the id '{job_id}'")
            hint = "use every matrix variable in the id or the prompt"
        else:
            there = row or self.reporter.position(where)
            message = (f"same content as the job at {there}, so both get the id '{job_id}'"
                       if derived else f"duplicate id '{job_id}', also used at {there}")
            hint = ("give each an id to generate it more than once" if derived
                    else "ids must be unique; rename one of the jobs")
        self.reporter.report(draft.id_at or (*draft.where, "id"), message, job=job_id,
                             field="id", hint=hint)
        return False
