"""The takes of one job as the gallery lists them: number, file, and which one is selected."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from octobatch.state import LockEntry


@dataclass(frozen=True)
class TakeView:
    number: int
    output: str | None  # relative to the lockfile's directory
    sha256: str | None
    selected: bool


def takes_of(entry: LockEntry | None) -> list[TakeView]:
    """The entry's recorded takes in order; the selected one is the file the entry describes."""
    raw = getattr(entry, "takes", None) or []
    records = [t for t in raw if isinstance(t, Mapping) and isinstance(t.get("take"), int)]
    current = entry.sha256 if entry is not None else None
    return [
        TakeView(
            number=t["take"],
            output=t.get("output"),
            sha256=t.get("sha256"),
            selected=current is not None and t.get("sha256") == current,
        )
        for t in records
    ]
