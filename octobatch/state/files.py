"""The local backend: lockfile, journal and run lock as files beside the manifest.

For `path/name.yaml`: `name.lock.json` (the snapshot, committed), `name.lock.journal` (JSON
lines, not committed), `name.lock.run` (the flock one run holds, not committed).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from octobatch.errors import StateError
from octobatch.fsutil import (
    atomic_replace_open,
    atomic_write,
    fsync_dir,
    open_dir,
    open_file,
    read_file,
    remove_file,
    write_all,
)
from octobatch.paths import followed
from octobatch.state.backend import Stored
from octobatch.state.entry import LockState
from octobatch.state.format import FormatError, parse_lockfile, render_lockfile
from octobatch.state.runlock import RunLock


def lock_path_for(manifest: Path) -> Path:
    """`path/name.yaml` -> `path/name.lock.json`; a symlinked manifest's is its target's."""
    manifest = followed(manifest)
    return manifest.with_name(manifest.stem + ".lock.json")


def journal_path_for(lock_path: Path) -> Path:
    """`name.lock.json` -> `name.lock.journal` (JSON lines, not committed)."""
    return lock_path.with_name(lock_path.name.removesuffix(".json") + ".journal")


def run_lock_path_for(lock_path: Path) -> Path:
    """`name.lock.json` -> `name.lock.run` (the OS lock one run holds; not committed)."""
    return lock_path.with_name(lock_path.name.removesuffix(".json") + ".run")


def explain(exc: FormatError, lock_path: Path | str) -> StateError:
    return StateError(f"{lock_path}: {exc.headline} ({exc}); {exc.advice}")


def read_lockfile(lock_path: Path, manifest_name: str) -> LockState:
    """Read the committed lockfile alone; a missing one is an empty state."""
    data = _read(lock_path, "lockfile")
    if data is None:
        return LockState(manifest=manifest_name)
    try:
        return parse_lockfile(data, manifest_name)
    except FormatError as exc:
        raise explain(exc, lock_path) from None


def write_lockfile(path: Path, state: LockState) -> bool:
    """Atomically replace `path` with `state`, only if the bytes differ; return whether it did."""
    return _write_if_changed(path, render_lockfile(state))


def temp_name_for(path: Path) -> str:
    """The temp file of the lockfile or journal: one fixed name, since only the run lock's
    holder writes them."""
    return f".{path.name}.tmp"


def _write_if_changed(path: Path, data: bytes) -> bool:
    if _read(path, "lockfile") == data:
        return False
    try:
        atomic_write(path, data, temp_name=temp_name_for(path))
    except OSError as exc:
        raise StateError(f"{path}: cannot write lockfile: {exc.strerror}") from None
    return True


def _read(path: Path, what: str) -> bytes | None:
    try:
        return read_file(path)
    except OSError as exc:
        raise StateError(f"{path}: cannot read {what}: {exc.strerror}") from None


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class LocalFiles:
    """The `Backend` of one manifest's state on the local disk."""

    def __init__(self, manifest: Path) -> None:
        self.manifest = manifest
        self.lock_path = lock_path_for(manifest)
        self.journal_path = journal_path_for(self.lock_path)
        # On the manifest's real path: a symlinked alias must not run beside the manifest.
        real = Path(os.path.realpath(manifest))
        same = real == Path(os.path.abspath(manifest))
        self.run_lock_path = run_lock_path_for(self.lock_path if same else lock_path_for(real))
        self._run_lock: RunLock | None = None
        self._journal_fd: int | None = None
        self._journal_size = 0
        self._broken: StateError | None = None  # set when a trim failed midway

    @property
    def snapshot_name(self) -> str:
        return str(self.lock_path)

    @property
    def journal_name(self) -> str:
        return str(self.journal_path)

    def read(self) -> Stored:
        # Lock-free readers (plan, status) may race a compaction: if the lockfile was replaced
        # while we read, read again, so the journal read matches the lockfile read.
        for _ in range(5):
            before = _identity(self.lock_path)
            snapshot = _read(self.lock_path, "lockfile")
            journal = _read(self.journal_path, "journal") or b""
            if _identity(self.lock_path) == before:
                break
        return Stored(snapshot, journal)

    def lock(self) -> None:
        # The state folder first: no run lock is created anywhere when it is refused.
        try:
            os.close(open_dir(self.lock_path.parent))
        except OSError as exc:
            raise StateError(f"{self.lock_path}: cannot keep state there: {exc.strerror}") from None
        self._run_lock = RunLock(self.run_lock_path, self.manifest)

    def begin(self, keep: int) -> None:
        try:
            fd = open_file(self.journal_path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
            self._journal_fd = fd
            os.ftruncate(fd, keep)  # drop a torn tail before appending after it
            # A new journal's directory entry must be durable too, or a power cut could
            # take the whole file, fsynced records and all.
            fsync_dir(self.lock_path.parent)
            # Left by a writer killed mid-compaction (a symlink there goes, its target stays).
            for path in (self.lock_path, self.journal_path):
                remove_file(path.with_name(temp_name_for(path)))
        except OSError as exc:
            raise StateError(f"{self.journal_path}: cannot open journal: {exc.strerror}") from None
        self._journal_size = keep

    def append(self, data: bytes) -> None:
        if self._broken is not None:
            raise self._broken
        fd = self._fd()
        try:
            write_all(fd, data)
            os.fsync(fd)
        except OSError as exc:
            # Cut off what part got written, so a retry writes whole lines instead of leaving
            # a corrupt one mid-journal.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._journal_size)
            raise StateError(
                f"{self.journal_path}: cannot write journal: {exc.strerror}; "
                "free space or fix permissions, then rerun to resume"
            ) from None
        self._journal_size += len(data)

    def write_snapshot(self, data: bytes) -> bool:
        return _write_if_changed(self.lock_path, data)

    def trim_journal(self, covered: int) -> None:
        fd = self._fd()
        try:
            if covered >= self._journal_size:
                os.ftruncate(fd, 0)
                os.fsync(fd)
                self._journal_size = 0
                return
            tail = os.pread(fd, self._journal_size - covered, covered)
            if len(tail) != self._journal_size - covered:
                raise OSError(errno.EIO, "the journal is shorter than what was written to it")
            # The rest goes into a new journal that replaces this one (temp file, rename):
            # cutting the head off in place could lose the tail in a crash.
            new = atomic_replace_open(self.journal_path, tail,
                                      temp_name=temp_name_for(self.journal_path))
        except OSError as exc:
            # Whether the journal was trimmed is not known now: no more appends, or the
            # sizes the store keeps could cut off synced records at the next trim.
            self._broken = StateError(f"{self.journal_path}: cannot trim journal: "
                                      f"{exc.strerror}; rerun to resume")
            raise self._broken from None
        os.close(fd)
        self._journal_fd = new
        self._journal_size = len(tail)

    def close(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        if self._run_lock is not None:
            self._run_lock.release()
            self._run_lock = None

    def _fd(self) -> int:
        if self._journal_fd is None:
            raise RuntimeError(f"{self.journal_path}: journal used before begin() or after close()")
        return self._journal_fd
