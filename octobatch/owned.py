"""Whether the file at a job's output name is one octobatch wrote for that job.

octobatch never replaces a file it did not write for the job: a video committed in a cloned
repository, another manifest's result, a clip the user edited in place. What it wrote is
what the lockfile records of the job's takes (size and sha256) at that name. Cheap checks
come first: the size must match, and a file not modified since its take completed is taken as
written (the lockfile records `completed_at`, to the second); only a file modified later is
read and hashed. No per-file timestamp is added to the lockfile: it is committed and must not
change with every checkout.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from octobatch.fsutil import file_sha256
from octobatch.paths import shown
from octobatch.state import LockEntry
from octobatch.takes import take_file

# File systems keep times more coarsely than the clock (FAT: 2 s), and `completed_at` is cut
# to the second after the file was placed.
_MTIME_SLACK = 3.0


def in_the_way(path: Path, entry: LockEntry | None, lock_dir: Path,
               arriving: Recorded | None = None) -> str | None:
    """Why the file at `path` (a job's output name) is not the job's to replace, or None when
    there is no file there, or it is one of the job's recorded takes, or it already holds the
    bytes `arriving` (the download about to be placed there)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{shown(path)} cannot be examined ({exc.strerror}); move it away and rerun"
    if stat.S_ISLNK(info.st_mode):
        return _advice(path, "is a symbolic link (octobatch never writes through one)")
    if not stat.S_ISREG(info.st_mode):
        return _advice(path, "is not a regular file")
    written = _written_at(os.path.relpath(path, lock_dir), entry)
    candidates = [*written, *([arriving] if arriving else [])]
    same_size = [r for r in candidates if r.bytes == info.st_size]
    if not same_size:
        if not written:
            return _advice(path, "was not written by octobatch for this job")
        recorded = " or ".join(str(s) for s in sorted({r.bytes for r in written}))
        return _advice(path, f"has {info.st_size} bytes, not the {recorded} octobatch wrote")
    if any(r.sha256 is None or _unchanged_since(info, r.completed_at) for r in same_size):
        return None  # (a hand-made entry without a sha256: the size is all there is to go by)
    digest = file_sha256(path)
    if digest is None:
        return f"{shown(path)} cannot be read; move it away and rerun"
    if any(digest == r.sha256 for r in same_size):
        return None
    return _advice(path, "was changed after octobatch wrote it" if written
                   else "was not written by octobatch for this job")


def aside_in_the_way(entry: LockEntry, final: Path, lock_dir: Path) -> str | None:
    """Why a new take of the job could not move the take at `final` to its own name
    (`<id>.take<N>.mp4`): a file there that is not that take. None when nothing is there, or
    the take itself is (moved before a crash)."""
    here = os.path.relpath(final, lock_dir)
    for take in entry.take_history():
        if take.output != here:
            continue
        kept = take_file(final, take.take)
        if os.path.lexists(kept):
            if in_the_way(kept, None, lock_dir, Recorded(take.sha256, take.bytes)):
                return (f"a new take moves take {take.take} ({shown(final)}) to {shown(kept)}, "
                        "which holds a file octobatch did not write for it; move that file "
                        "away (or delete it) and rerun")
    return None


@dataclass(frozen=True)
class Recorded:
    """A result's bytes as the lockfile records them."""

    sha256: str | None
    bytes: int
    completed_at: str = ""


def _written_at(output: str, entry: LockEntry | None) -> list[Recorded]:
    """What octobatch placed at `output` (relative to the lockfile) for this job."""
    if entry is None:
        return []
    written = [Recorded(t.sha256, t.bytes, t.completed_at) for t in entry.take_history()
               if t.output == output]
    # A job regenerating (or an entry from before takes were kept) still records its last
    # result in the top-level fields.
    if entry.output == output and entry.bytes is not None:
        written.append(Recorded(entry.sha256, entry.bytes, entry.completed_at or ""))
    return written


def _unchanged_since(info: os.stat_result, completed_at: str) -> bool:
    try:
        moment = datetime.fromisoformat(completed_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False  # no usable time recorded: the bytes decide
    return info.st_mtime <= moment + _MTIME_SLACK


def _advice(path: Path, what: str) -> str:
    return (f"{shown(path)} {what}, so it is not replaced; move it away (or delete it) and "
            "rerun to get the job's video there")
