"""The run lock: one run per manifest, an OS `flock` the kernel drops when the process dies."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from octobatch.errors import StateError
from octobatch.fsutil import open_file


class RunLock:
    """An exclusive flock on `path` held until `release()` (or the process's death).

    `path` belongs to the manifest's real path, so a symlinked alias of a manifest takes the
    same lock as the manifest itself; `manifest` is the path as the user gave it (messages).
    """

    def __init__(self, path: Path, manifest: Path) -> None:
        self.path = path
        self._fd: int | None = _take(path, manifest)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _take(path: Path, manifest: Path) -> int:
    try:
        fd = open_file(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise StateError(f"{path}: cannot create the run lock: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise StateError(f"{path}: cannot take the run lock: {exc.strerror}") from None
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        real = Path(os.path.realpath(manifest))
        alias = "" if real == Path(os.path.abspath(manifest)) else f", the same file as {real}"
        raise StateError(
            f"another octobatch run is already using {manifest} (pid {holder}{alias}); "
            "wait for it to finish or stop it"
        ) from None
    # The pid is informational only (for the message above); the flock is the lock.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
