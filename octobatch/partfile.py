"""A download's files on disk: the `.<id>.mp4.part` it streams into and its resume note.

The output folder is opened once per run (`OutputFolder`, an `fsutil.Folder`: no symlink
followed on the way to it) and every file in it is opened by name relative to it with
O_NOFOLLOW, so a transfer costs no folder walk per file operation.

A `PartFile` is used in the file threads only, one call at a time: each call writes a batch of
chunks (hashed in the same thread), and fsyncs, notes and closes when the caller says so. So a
1 MB video costs a few calls into the file threads, not one per operation.

The resume note (`.<id>.mp4.part.json`) says which object the kept bytes are of and how many
of them are on disk. It is written only when a later run could use it: every `DURABLE_STEP`
bytes of a long transfer, and when a transfer is cut. A short video that arrives whole never
has one. Functions here raise OSError naming the path (the caller says what to do about it).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from octobatch import fsutil

DURABLE_STEP = 16 * 1024 * 1024  # fsync and note the kept size this often, for a later run
READ_SIZE = 512 * 1024  # rehashing kept bytes
_NOTE_SUFFIX = ".json"
_MAX_NOTE = 4096
_IOV_MAX = 512  # chunks per pwritev call (Linux allows 1024)


@dataclass
class Partial:
    """What is known about the bytes of one `.part` file kept between calls."""

    size: int = 0  # bytes on disk, all hashed
    total: int | None = None  # the whole object's size, when the server said
    validator: str | None = None  # ETag, else Last-Modified, of the object those bytes are of
    digest: Any = field(default_factory=hashlib.sha256)
    call_start: int = 0  # `size` when the current call began: what a cut call still gained
    durable: int = 0  # bytes fsynced and named in the resume note


def note_name(part_name: str) -> str:
    """Beside `.<id>.mp4.part`: which object its bytes are of, for a later run's resume."""
    return part_name + _NOTE_SUFFIX


class OutputFolder(fsutil.Folder):
    """The folder videos are downloaded into, open for the run; knows which resume notes may
    be in it (those there when it was opened, and those written since), so a download that
    has none, the usual case, does not look for one."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self._notes = {name for name in self.names() if name.endswith(".part" + _NOTE_SUFFIX)}

    def may_have_note(self, part_name: str) -> bool:
        return note_name(part_name) in self._notes

    def write_note(self, part_name: str, kept: Partial) -> None:
        """Name the object and the durable size of `kept` for a later run."""
        name = note_name(part_name)
        if not _strong(kept.validator):
            self.remove_note(part_name)
            return
        data = json.dumps({"etag": kept.validator, "total": kept.total,
                           "durable": kept.durable}).encode()
        self._notes.add(name)  # before the file exists: never missed by a later removal
        fd = self.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            _named(fsutil.write_all, fd, data, path=self.path / name)
        finally:
            os.close(fd)

    def clear_note(self, part_name: str, kept: Partial) -> None:
        """Before a file starts over: a note left for other bytes goes, so that it never names
        what the file starts holding now. A link there is refused (the note would be written
        through it later) unless no note will be written (no strong ETag)."""
        name = note_name(part_name)
        if name not in self._notes:
            return
        if _strong(kept.validator):
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(self.lstat(name).st_mode):
                    raise fsutil.SymlinkRefused(self.path / name)
        self.remove_note(part_name)

    def remove_note(self, part_name: str) -> None:
        name = note_name(part_name)
        if name in self._notes:
            self.remove(name)
            self._notes.discard(name)

    def left_by_an_earlier_run(self, part_name: str) -> Partial | None:
        """The state of a `.part` an interrupted run left, its kept bytes rehashed; or None."""
        if not self.may_have_note(part_name):
            return None
        try:
            raw = self.read(note_name(part_name))
            if raw is None or len(raw) > _MAX_NOTE:
                return None
            note = json.loads(raw)
            etag, total, durable = note["etag"], note["total"], note["durable"]
            if not isinstance(etag, str) or not (total is None or isinstance(total, int)) \
                    or not isinstance(durable, int) or durable <= 0:
                return None
            fd = self.open(part_name, os.O_RDWR)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "r+b", buffering=0) as part:
            if os.fstat(fd).st_size < durable:
                return None
            part.truncate(durable)  # bytes past the note may not have reached the disk
            while size < durable and (chunk := part.read(min(READ_SIZE, durable - size))):
                digest.update(chunk)
                size += len(chunk)
        return Partial(size=size, total=total, validator=etag, digest=digest, durable=size)


class PartFile:
    """The `.part` of one transfer into `kept`'s bytes: opened by the first `put`, closed by
    the last. Calls are serialised, so one still running after its caller was cancelled
    finishes before the next begins."""

    def __init__(self, folder: OutputFolder, name: str, kept: Partial) -> None:
        self.folder = folder
        self.name = name
        self.path = folder.path / name
        self.kept = kept
        self._fd: int | None = None
        self._closed = False
        self._lock = threading.Lock()

    def put(self, chunks: list[bytes], *, sync: bool = False, note: bool = False,
            close: bool = False) -> None:
        """Append `chunks` and hash them; then fsync, close, and note the durable size for a
        later run (`note`; also every DURABLE_STEP bytes of a long transfer), as asked."""
        with self._lock:
            if self._closed:
                return
            kept = self.kept
            try:
                if self._fd is None:
                    self._open()
                assert self._fd is not None
                if chunks:
                    _named(_pwrite_all, self._fd, chunks, kept.size, path=self.path)
                    for chunk in chunks:
                        kept.digest.update(chunk)  # releases the GIL for large chunks
                    kept.size += sum(len(chunk) for chunk in chunks)
                note = note or (not close and kept.size - kept.durable >= DURABLE_STEP)
                if sync or note:
                    # fsync, then note the size: after a kill -9 or a power cut, a later run
                    # trusts only bytes that were on disk before the note said so.
                    _named(os.fsync, self._fd, path=self.path)
                if note:
                    kept.durable = kept.size
                    self.folder.write_note(self.name, kept)
            finally:
                if close:
                    self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self) -> None:
        fresh = self.kept.size == 0
        if fresh:
            self.folder.clear_note(self.name, self.kept)
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0)
        self._fd = self.folder.open(self.name, flags)

    def _close(self) -> None:
        self._closed = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _strong(validator: str | None) -> bool:
    # Only a strong ETag names an object well enough to trust bytes kept across runs (a
    # Last-Modified date has one-second steps); without one a later run starts over.
    return validator is not None and validator.startswith('"')


def _pwrite_all(fd: int, chunks: list[bytes], offset: int) -> None:
    """Write `chunks` one after another at `offset`, without joining them into one buffer."""
    views = [memoryview(chunk) for chunk in chunks if chunk]
    while views:
        batch = views[:_IOV_MAX]
        written = (os.pwritev(fd, batch, offset) if hasattr(os, "pwritev")
                   else os.pwrite(fd, batch[0], offset))
        if written <= 0:
            raise OSError(errno.EIO, "the file system accepted no bytes")
        offset += written
        while written:  # drop what was written; a short write resumes mid-chunk
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0] = views[0][written:]
                written = 0


def _named(function: Any, *args: Any, path: Path) -> None:
    """Call `function`; an OSError it raises names `path`."""
    try:
        function(*args)
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
