"""Where each take's video lives: the selected one at `<id>.mp4`, every other at
`<id>.take<N>.mp4`, beside it. A new result never overwrites an earlier one.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from octobatch.fsutil import SymlinkRefused, file_sha256, open_dir
from octobatch.manifest.outputs import write_root
from octobatch.state import LockEntry, StateStore


def take_file(final: Path, take: int) -> Path:
    """`out/cat.mp4`, take 2 -> `out/cat.take2.mp4`."""
    return final.with_name(f"{final.stem}.take{take}{final.suffix}")


def keep_earlier_takes(entry: LockEntry, final: Path, lock_dir: Path) -> dict[int, str]:
    """Before a new result of `entry`'s job goes to `final`, move the earlier take living there
    to its own name; return take -> new output (relative to `lock_dir`) for the store.

    Idempotent for a rerun after a crash: a file already moved is simply recorded. Raises
    OSError (a read-only folder, a symlink planted at either name).
    """
    here = os.path.relpath(final, lock_dir)
    moved: dict[int, str] = {}
    for take in entry.take_history():
        if take.output != here or take.task_id == entry.task_id:
            continue  # elsewhere already, or the same task downloaded again
        kept = take_file(final, take.take)
        dir_fd = open_dir(final.parent)
        try:
            _refuse_links(dir_fd, final, kept)
            kept_there = _exists(kept.name, dir_fd)
            # Read only when a crash may have left the take moved already.
            if kept_there and file_sha256(kept.name, dir_fd=dir_fd) == take.sha256:
                pass  # moved before a crash: whatever `final` holds now is not recorded
            elif _exists(final.name, dir_fd):
                if kept_there:  # never lose either video
                    raise FileExistsError(errno.EEXIST, f"{kept} exists, so take {take.take} "
                                          "cannot be kept there; move it away", str(kept))
                os.rename(final.name, kept.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        moved[take.take] = os.path.relpath(kept, lock_dir)
    return moved


def _refuse_links(dir_fd: int, *paths: Path) -> None:
    """A rename never follows a link, but it would move a planted one into a take's place
    (where the gallery would show what it points at) or bury a recorded take under it."""
    for path in paths:
        try:
            if stat.S_ISLNK(os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                raise SymlinkRefused(path)
        except FileNotFoundError:
            pass


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def select_take(store: StateStore, job_id: str, take: int, *,
                folder: Path | None = None) -> LockEntry:
    """Make take `take` the job's result: its file becomes the selected name (`<id>.mp4`),
    the one there now moves to its own take name, and the top-level fields follow.

    Files are moved only in `folder` (the manifest's output folder; without it, any folder in
    the manifest's project or the current one): the paths come from the lockfile, which a
    cloned repository may have written to name files anywhere.

    Both renames happen before the record, so a crash in between leaves every video on disk
    (the next `plan` downloads the selected one again at worst). Raises ValueError for an
    unknown take or a video outside `folder`, OSError when a file cannot be moved.
    """
    entry = store.state.jobs[job_id]
    takes = {t.take: t for t in entry.take_history()}
    if take not in takes:
        raise ValueError(f"job {job_id!r} has no take {take}")
    current = entry.selected or next(
        (t for t in takes.values() if t.output == entry.output), None)
    if current is None or entry.output is None:
        raise ValueError(f"job {job_id!r} has no selected take to swap with")
    if current.take == take:
        return entry
    lock_dir = store.lock_dir
    final = lock_dir / entry.output
    aside = take_file(final, current.take)
    chosen = lock_dir / takes[take].output
    # `review` runs no output-folder check first: walk to the folder from its project.
    root = write_root(final.parent, store.manifest_path)
    here = Path(os.path.abspath(final.parent))
    outside = root is None if folder is None else here != Path(os.path.abspath(folder))
    if outside:
        raise ValueError(f"job {job_id!r}: the lockfile puts its video at {entry.output}, "
                         "outside the manifest's output folder, and octobatch moves no file "
                         "there (was the lockfile edited, or the output folder changed?)")
    dir_fd = open_dir(final.parent, root=root)
    try:
        _refuse_links(dir_fd, final, aside, *([chosen] if chosen.parent == final.parent else []))
        if _exists(final.name, dir_fd):
            if _exists(aside.name, dir_fd):  # moving the selected video there would lose one
                raise FileExistsError(errno.EEXIST, f"{aside} exists, so take {current.take} "
                                      "cannot be moved there; move it away", str(aside))
            os.rename(final.name, aside.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        if chosen.parent == final.parent and _exists(chosen.name, dir_fd):
            os.rename(chosen.name, final.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return store.take_selected(job_id, take, {current.take: os.path.relpath(aside, lock_dir),
                                              take: os.path.relpath(final, lock_dir)})
