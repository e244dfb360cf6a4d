"""The takes of one job as the gallery lists them: number, file, and which one is selected."""

from __future__ import annotations

from dataclasses import dataclass

from octobatch.state import LockEntry


@dataclass(frozen=True)
class TakeView:
    number: int
    output: str  # relative to the lockfile's directory
    selected: bool  # the take the entry's top-level fields (and `<id>.mp4`) describe
    possible_duplicate: bool = False  # its submission may have created a second, paid task


def takes_of(entry: LockEntry | None) -> list[TakeView]:
    """Every result the job has had, in order (a completed entry from before takes is take 1)."""
    if entry is None:
        return []
    selected = entry.selected
    return [TakeView(number=t.take, output=t.output, selected=t == selected,
                     possible_duplicate=t.possible_duplicate)
            for t in entry.take_history()]
