"""What the state store needs from where state lives: the seam for another backend.

State is a snapshot (the lockfile's bytes) plus an append-only log of records since it (the
journal's bytes). The store owns everything else: parsing, replay, group commit, when to
compact. `LocalFiles` (`files.py`) keeps them beside the manifest; a remote backend is one new
module with a class of these methods, passed to `StateStore.open(..., backend=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Stored:
    snapshot: bytes | None  # None: nothing recorded yet
    journal: bytes  # records appended since the snapshot; may end with a torn line


class Backend(Protocol):
    @property
    def snapshot_name(self) -> str:
        """Where the snapshot lives, for messages (the lockfile's path)."""
        ...

    @property
    def journal_name(self) -> str:
        """Where the journal lives, for messages."""
        ...

    def read(self) -> Stored:
        """A consistent snapshot and journal, without the run lock (a run may be writing)."""
        ...

    def lock(self) -> None:
        """Take the exclusive run lock, or raise StateError saying who holds it."""
        ...

    def begin(self, keep: int) -> None:
        """Under the lock: keep the journal's first `keep` bytes (cutting a torn tail) and get
        ready to append; clear whatever a writer killed mid-snapshot left."""
        ...

    def append(self, data: bytes) -> None:
        """Append whole records durably before returning; on failure keep none of `data`."""
        ...

    def write_snapshot(self, data: bytes) -> bool:
        """Replace the snapshot atomically if `data` differs from it; return whether it did."""
        ...

    def trim_journal(self, covered: int) -> None:
        """Drop the journal's first `covered` bytes, which a snapshot now holds, durably; the
        rest (appended since the snapshot was taken) stays. Midway, a crash leaves the
        journal whole, which is safe: replaying a record twice changes nothing."""
        ...

    def close(self) -> None:
        """Release the lock and any handles; writes nothing. Safe to call twice."""
        ...
