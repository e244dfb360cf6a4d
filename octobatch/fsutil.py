"""Opening and writing the files octobatch owns, never through a symbolic link.

A cloned repository can hold symlinks (git keeps them): one planted where octobatch writes,
`out/.cat.mp4.part -> ~/.bashrc` or `out -> ~/Documents`, would make a run overwrite files far
from the project. So every file octobatch writes or locks is opened here:

- the last component with O_NOFOLLOW (a symlink there is refused, not followed);
- every folder between the project root and the file opened one by one with
  O_DIRECTORY | O_NOFOLLOW, relative to the previous one, and the file opened relative to the
  last (`dir_fd`): no symlink inside the project is followed, and none can be swapped in
  between a check and the use. Folders above the project root are the user's own path.

The project root is the git work tree that contains the folder, else the folder itself.
A refusal is a `SymlinkRefused` (an OSError, errno ELOOP) whose message names the link.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
import weakref
from pathlib import Path

# Shared outputs (lockfile, videos, gallery) are readable by others, as any file the user
# creates would be: 0644 before the umask.
FILE_MODE = 0o644
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SymlinkRefused(OSError):
    """A path octobatch writes or locks is, or goes through, a symbolic link."""

    def __init__(self, link: Path) -> None:
        super().__init__(
            errno.ELOOP,
            f"{link} is a symbolic link, and octobatch never writes through one (a cloned "
            "repository can plant one to reach files elsewhere); remove it",
            str(link),
        )

    def __str__(self) -> str:
        return self.strerror or ""


def project_root(directory: Path) -> Path:
    """The git work tree that contains `directory`, else `directory` itself (both absolute)."""
    path = candidate = os.path.abspath(directory)
    while True:  # plain strings: every file octobatch writes asks, so this is kept cheap
        if os.path.lexists(os.path.join(candidate, ".git")):
            return Path(candidate)
        parent = os.path.dirname(candidate)
        if parent == candidate:
            return Path(path)
        candidate = parent


def open_dir(directory: Path, *, root: Path | None = None) -> int:
    """A descriptor of `directory`, reached without following a symlink below `root`.

    `root` defaults to the project root of `directory`; a directory outside `root` is
    trusted as given (the user named it).
    """
    directory = Path(os.path.abspath(directory))
    base = project_root(directory) if root is None else Path(os.path.abspath(root))
    try:
        parts = directory.relative_to(base).parts
    except ValueError:
        base, parts = directory, ()
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(base)) from None
    current = base
    try:
        for part in parts:
            current = current / part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if _is_link(part, fd):
                    raise SymlinkRefused(current) from None
                raise OSError(exc.errno, exc.strerror, str(current)) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class Folder:
    """A folder reached once as `open_dir` reaches it, then kept open: its files are opened by
    name relative to it, each name with O_NOFOLLOW. For many files in one folder (a run's
    videos) this saves the walk per file, and a folder swapped for a symlink after the check
    changes nothing: the files go where the check was made. Safe to share between threads;
    the descriptor is closed by `close()` or once nothing refers to the folder any more (so
    a thread still using it never finds its number reused for another file).
    """

    def __init__(self, directory: Path, *, root: Path | None = None) -> None:
        self.path = Path(os.path.abspath(directory))
        self.fd: int | None = open_dir(self.path, root=root)
        self._closer = weakref.finalize(self, os.close, self.fd)

    def open(self, name: str, flags: int, mode: int = FILE_MODE) -> int:
        """`os.open` of the file `name` in this folder, as `open_file` does it."""
        return _open_in(self._fd(), self.path / name, flags, mode)

    def read(self, name: str) -> bytes | None:
        """The bytes of the file `name`, None if it does not exist; never through a symlink."""
        try:
            fd = self.open(name, os.O_RDONLY)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def remove(self, name: str) -> None:
        """Remove the file `name` if it exists (a symlink there is removed itself)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self._fd())

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self._fd(), follow_symlinks=False)

    def names(self) -> list[str]:
        return os.listdir(self._fd())

    def close(self) -> None:
        self.fd = None
        self._closer()

    def _fd(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, "folder used after close()", str(self.path))
        return self.fd


def open_file(path: Path, flags: int, mode: int = FILE_MODE, *, root: Path | None = None) -> int:
    """`os.open(path, flags, mode)` that refuses symlinks (see the module docstring) and any
    file that is not a regular one (a FIFO planted at a journal's path would block forever)."""
    dir_fd = open_dir(path.parent, root=root)
    try:
        return _open_in(dir_fd, path, flags, mode)
    finally:
        os.close(dir_fd)


def read_file(path: Path, *, root: Path | None = None) -> bytes | None:
    """The bytes of `path`, None if it does not exist; never read through a symlink."""
    try:
        fd = open_file(path, os.O_RDONLY, root=root)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def file_sha256(name: str | Path, *, dir_fd: int | None = None) -> str | None:
    """The sha256 of a regular file's bytes (`name` relative to `dir_fd` if given), None when
    it cannot be opened; never through a symlink at the name."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes, *, root: Path | None = None,
                 temp_name: str | None = None, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data`: temp file, fsync, rename over, fsync the folder.

    A reader sees the old file or the new one, never a mix; after a crash the file is one of
    the two, never empty (the rename is durable once the folder is fsynced). The temp file is
    created exclusively (O_EXCL | O_NOFOLLOW) in the same folder, under a random name unless
    `temp_name` fixes one (for a single writer that clears its leftovers); it is removed on
    failure. A symlink at `path` is refused rather than replaced. Raises OSError.
    """
    os.close(_replace(path, data, root, temp_name, mode))


def atomic_replace_open(path: Path, data: bytes, *, temp_name: str | None = None,
                        mode: int = FILE_MODE) -> int:
    """`atomic_write`, returning the new file open for reading and appending: whoever goes
    on writing to it never holds the replaced file instead (nothing can fail between the
    rename and the open)."""
    return _replace(path, data, None, temp_name, mode, os.O_RDWR | os.O_APPEND)


def _replace(path: Path, data: bytes, root: Path | None, temp_name: str | None, mode: int,
             flags: int = os.O_WRONLY) -> int:
    dir_fd = open_dir(path.parent, root=root)
    name = temp_name
    fd: int | None = None
    try:
        if _is_link(path.name, dir_fd):
            raise SymlinkRefused(path)
        fd, name = _create_temp(dir_fd, path, temp_name, mode, flags)
        write_all(fd, data)
        os.fsync(fd)
        os.replace(name, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
        return fd
    except OSError as exc:
        if fd is not None:
            os.close(fd)
        if name is not None and not isinstance(exc, SymlinkRefused):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        os.close(dir_fd)


def remove_file(path: Path, *, root: Path | None = None) -> None:
    """Remove `path` if it exists (a symlink there is removed itself, its target untouched)."""
    dir_fd = open_dir(path.parent, root=root)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path.name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def make_dirs(directory: Path, *, root: Path | None = None) -> None:
    """`mkdir -p directory`, creating nothing through a symlink below the project root."""
    directory = Path(os.path.abspath(directory))
    missing: list[Path] = []
    while not os.path.lexists(directory) and directory.parent != directory:
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        dir_fd = open_dir(folder.parent, root=root)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder.name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    os.close(open_dir(missing[0] if missing else directory, root=root))  # refuses a link


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _open_in(dir_fd: int, path: Path, flags: int, mode: int) -> int:
    try:
        # O_NONBLOCK only matters for a FIFO or device, refused just below.
        fd = os.open(path.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode,
                     dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and _is_link(path.name, dir_fd)):
            raise SymlinkRefused(path) from None
        if exc.errno == errno.ENXIO:  # a FIFO without a reader
            raise _not_regular(path) from None
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_regular(path)
    os.set_blocking(fd, True)
    return fd


def _not_regular(path: Path) -> OSError:
    return OSError(errno.EINVAL, f"{path} is not a regular file; move it away", str(path))


def _create_temp(dir_fd: int, path: Path, temp_name: str | None, mode: int,
                 access: int) -> tuple[int, str]:
    flags = access | os.O_CREAT | os.O_EXCL
    if temp_name is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name, dir_fd=dir_fd)  # a leftover (or a planted link) goes, alone
        return _open_in(dir_fd, path.with_name(temp_name), flags, mode), temp_name
    while True:
        name = f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return _open_in(dir_fd, path.with_name(name), flags, mode), name
        except FileExistsError:
            continue


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
