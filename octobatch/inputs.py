"""Reading input files: the one place octobatch opens a local file a job sends.

A manifest's local files are read twice: when the manifest is loaded (checked and hashed, in
manifest/files.py) and when a job is submitted (`read_input`, before the job is journaled as
submitting). Both go through `open_regular`, and every problem is one error type,
InputFileError: a manifest problem when loading, that job's failure when submitting.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from octobatch.errors import OctobatchError
from octobatch.jobs import LocalFile


class InputFileError(OctobatchError):
    """An input file (or URL, or data URI) that cannot be used; the message names it and the
    hint says what to do. A manifest problem when loading, that job's failure when submitting.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(f"{message} ({hint})" if hint else message)
        self.message = message
        self.hint = hint


def unreadable(exc: OSError, value: str) -> InputFileError:
    """Why the input file `value` (as the manifest names it) could not be read."""
    if isinstance(exc, FileNotFoundError):
        return InputFileError(f"no such file '{value}'",
                              "paths are relative to the manifest's directory")
    if isinstance(exc, IsADirectoryError):
        return InputFileError(f"'{value}' is a directory, not a file")
    if isinstance(exc, NotRegular):  # a FIFO or a device (/dev/zero) would block or never end
        return InputFileError(f"'{value}' is not a regular file")
    return InputFileError(f"cannot read '{value}': {exc.strerror or exc}")


def read_input(file: LocalFile) -> bytes:
    """The content of a validated local file, read again to be sent.

    Raises InputFileError when the file is gone or is no longer the one the manifest was
    validated (and the job hashed) with: sending other bytes than the spec says would make
    the lockfile lie about what generated the video.
    """
    shown = _shown(file.path)
    changed = InputFileError(f"{file.field}: '{shown}' changed after the manifest was validated",
                             "run again: octobatch validates it anew and regenerates the job")
    try:
        with open_regular(file.path) as (f, size):
            if size != file.size:
                raise changed
            data = f.read(file.size + 1)
    except FileNotFoundError:
        raise InputFileError(
            f"{file.field}: '{shown}' was removed after the manifest was validated",
            "restore it, or edit the manifest, and run again",
        ) from None
    except (IsADirectoryError, NotRegular):
        raise changed from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # now a symlink: not the file that was checked
            raise changed from None
        raise InputFileError(f"{file.field}: cannot read '{shown}': {exc.strerror or exc}",
                             "check the file's permissions and run again") from None
    if len(data) != file.size or hashlib.sha256(data).hexdigest() != file.sha256:
        raise changed
    return data


class NotRegular(OSError):
    """A FIFO, a device or a socket: reading it would block or never end."""


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """`path` opened for reading, with its size: a regular file only, never a symlink (the
    paths here are resolved: a symlink now means the file was swapped), and without blocking
    on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(errno.EINVAL, "not a regular file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f, info.st_size


def _shown(path: Path) -> str:
    """A path as a user in the current folder would type it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
