"""How paths are written out: one rule for people, one for programs (docs/cli.md, "Paths").

People read paths relative to the folder they are in, so they can paste them into the next
command. Programs (`--json`, `plan --json`, `status --json`, the library's events) get absolute
paths, which open from any working directory. Only the lockfile keeps paths relative to
itself, so that it stays valid when the project is cloned elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def shown(path: str | os.PathLike[str]) -> str:
    """For people: relative to the current directory, unless the two share only the root.

    `/tmp/a.yaml` seen from `/home/me/project` stays `/tmp/a.yaml`, not `../../../tmp/a.yaml`.
    """
    full, here = os.path.abspath(path), os.getcwd()
    try:
        common = os.path.commonpath([full, here])
    except ValueError:  # another drive on Windows
        return full
    if common == os.path.dirname(common):  # the root: nothing in common worth climbing to
        return full
    return os.path.relpath(full, here)


def absolute(path: str | os.PathLike[str]) -> str:
    """For programs: absolute, symlinks left as they are (the user's view of the tree)."""
    return os.path.abspath(path)


def from_lockfile(lock_path: Path, output: str | None) -> Path | None:
    """A lockfile entry's `output` (relative to the lockfile's folder) as a usable path."""
    return None if not output else Path(os.path.abspath(lock_path.parent / output))


def followed(path: Path) -> Path:
    """`path`, or the file a symbolic link at its last component leads to.

    A symlinked manifest is the manifest it points at (its lockfile, its relative paths), so
    an alias never pays again for the target's jobs. Only the last component is followed:
    linked folders on the way keep the user's spelling, which the lockfile's relative output
    paths are computed against.
    """
    for _ in range(_MAX_LINKS):
        try:
            target = os.readlink(path)
        except OSError:  # not a link (or not there: the caller reports that)
            return path
        path = Path(os.path.normpath(path.parent / target))
    return path  # a loop of links: opening it fails with the system's own message


_MAX_LINKS = 40  # as the kernel allows
