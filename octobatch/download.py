"""Downloading a finished video: resumable, checked, bounded, and safe for the disk.

A transfer streams into `.<id>.mp4.part` and hashes as it writes. When it is cut, the bytes
already on disk stay, with the hasher's state and the object's validator (ETag, else
Last-Modified); the next call for the same file asks only for the rest (`Range` with
`If-Range`), so a cut 200 MB video costs the missing bytes, not 200 MB. A server that ignores
the range (200), or an object that changed (its validator differs), restarts the file from
byte 0 with a fresh hasher: the sha256 is always that of the whole file.

A download counts only if it is an MP4 (an `ftyp` box first), within a size cap, fetched
without content encoding, with no silence longer than the stall limit and within a deadline.
Errors say what to do next: `TruncatedDownload` (transient: call again to resume),
`NotAVideo` (transient: the next call starts over), `PermanentDownloadError` (retrying the
same URL cannot help), `LocalWriteError` (this machine's disk: the message names the path
and the fix).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from octobatch import fsutil
from octobatch.answerwatch import AnswerWatch, Watched
from octobatch.errors import OctobatchError
from octobatch.filethreads import FileThreads
from octobatch.outlast import outlast_cancellation, retrieved
from octobatch.partfile import OutputFolder, PartFile, Partial, note_name
from octobatch.stallwatch import StallWatch
from octobatch.transport import (
    ApiError,
    Downloaded,
    ErrorMapper,
    Finish,
    TruncatedDownload,
    UrlExpired,
    as_url,
    transport_error,
)

DEFAULT_MAX_VIDEO_BYTES = 2 * 1024 ** 3  # 2 GiB: real videos are 20-200 MB
MAX_VIDEO_BYTES_ENV = "OCTOBATCH_MAX_VIDEO_BYTES"
STALL_SECONDS = 60.0  # no byte for this long on an open transfer: cut it and resume
DEADLINE_SECONDS = 3600.0  # one file's whole download in a run, every attempt included
RESUME_AT_ONCE_BYTES = 64 * 1024  # a cut transfer that brought this much resumes without backoff
_CHUNK = 256 * 1024  # network read size
_WRITE_SIZE = 512 * 1024  # bytes buffered before a write (two at most per job: bounded memory)
_ERROR_BODY = 64 * 1024  # bytes of an error answer read for its message
_NO_TIMERS = aiohttp.ClientTimeout(total=None)  # the watches bound a download instead

T = TypeVar("T")


class NotAVideo(ApiError):
    """The URL served something that is not an MP4 (an HTML error page, a gzip stream)."""


class PermanentDownloadError(ApiError):
    """The file cannot be fetched from this URL however often we try (e.g. too large)."""


class LocalWriteError(OctobatchError):
    """Writing the video on this machine failed: disk full, read-only, no permission, name
    too long. The message names the path and what to do; the task id is kept."""


@dataclass(frozen=True)
class DownloadLimits:
    """What a download may cost; see docs/engine.md ("Downloads")."""

    max_bytes: int = DEFAULT_MAX_VIDEO_BYTES
    stall_seconds: float = STALL_SECONDS
    deadline_seconds: float = DEADLINE_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> DownloadLimits:
        raw = env.get(MAX_VIDEO_BYTES_ENV, "").strip()
        if not raw:
            return cls()
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise OctobatchError(f"{MAX_VIDEO_BYTES_ENV}={raw!r} is not a positive number of "
                                 "bytes; set it to e.g. 4294967296 (4 GiB) or unset it")
        return cls(max_bytes=value)


class Downloader:
    """Fetches result URLs into files; keeps each cut file's state for the next call."""

    def __init__(self, files: FileThreads, limits: DownloadLimits,
                 scrub: Callable[[str], str]) -> None:
        self._files = files
        self.limits = limits
        self._scrub = scrub
        self._partials: dict[Path, Partial] = {}  # whose bytes each .part file holds
        self._wire: dict[Path, int] = {}  # body bytes received per file, over every call
        self._began: dict[Path, float] = {}  # when each file's first attempt started
        self._folders: dict[Path, OutputFolder] = {}  # opened once per run
        self._headers = AnswerWatch(limits.stall_seconds)  # the wait for each answer's headers
        self._opening: dict[Path, asyncio.Future[OutputFolder]] = {}

    async def fetch(self, http: aiohttp.ClientSession, url: str, dest: Path,
                    errors: ErrorMapper, headers: Mapping[str, str],
                    then: Finish | None = None) -> Downloaded:
        folder = self._folders.get(dest.parent) or await self._open_folder(dest)
        kept = self._partials.get(dest)
        if kept is None and folder.may_have_note(dest.name):
            kept = await self._in_files(dest, folder.left_by_an_earlier_run, dest.name)
        kept = self._resumable(folder, dest, kept)
        kept.call_start = kept.size
        request_headers = {**headers, "Accept-Encoding": "identity", "Accept": "*/*"}
        if kept.size:
            request_headers["Range"] = f"bytes={kept.size}-"
            if kept.validator:
                request_headers["If-Range"] = kept.validator
        # However the bytes trickle, one file's download has one deadline over all attempts.
        left = self.limits.deadline_seconds - (
            time.monotonic() - self._began.setdefault(dest, time.monotonic()))
        if left <= 0:
            self.forget(dest)
            raise PermanentDownloadError(
                f"the video did not arrive within {self.limits.deadline_seconds:g} s; rerun to "
                "try again (the task is kept)")
        # The wait for the headers is one watch's for every download, the body's silence and
        # the deadline a StallWatch's: no aiohttp timer per read. Near the deadline (less left
        # than the stall limit) aiohttp's own timeouts bound it all instead.
        started = time.monotonic()
        if left > self.limits.stall_seconds:
            timeout, watched = _NO_TIMERS, self._headers.watching()
            deadline: float | None = asyncio.get_running_loop().time() + left
        else:
            timeout = aiohttp.ClientTimeout(total=left, sock_read=self.limits.stall_seconds)
            watched, deadline = Watched(None), None
        try:
            with watched:
                async with http.get(as_url(url), headers=request_headers, timeout=timeout,
                                       auto_decompress=False) as resp:
                    if resp.status in (400, 401, 403, 404, 410):
                        raise UrlExpired(f"result URL answered HTTP {resp.status}",
                                         status=resp.status)
                    if resp.status == 416 and kept.size:
                        watched.done()  # what follows is our own disk work
                        got = dataclasses.replace(self._unsatisfiable(resp, dest, kept),
                                                  folder=folder)
                        await self._in_files(dest, self._seal, folder, dest.name, got, then,
                                             outlast=True)
                        return got
                    if resp.status not in (200, 206):
                        body = await resp.content.read(_ERROR_BODY)
                        raise errors(resp.status,
                                     self._scrub(body.decode("utf-8", "replace")),
                                     resp.headers.get("Retry-After"))
                    # A 200 is the whole object: a fresh file, which replaces the kept bytes
                    # only once its first bytes prove it is a video (an HTML page must not
                    # cost them).
                    target = kept if resp.status == 206 and self._continues(resp, dest, kept) \
                        else Partial()
                    _check_answer(resp, self._scrub)
                    target.validator = (resp.headers.get("ETag")
                                        or resp.headers.get("Last-Modified"))
                    target.total = _total_size(resp, target.size)
                    if target.total is not None and target.total > self.limits.max_bytes:
                        raise _too_large(target.total, self.limits.max_bytes)

                    def seal() -> None:  # in the file threads, right after the last write
                        if _whole(target):
                            got = _downloaded(target, self._wire.get(dest, 0), folder)
                            self._seal(folder, dest.name, got, then)

                    watched.done()  # the body is the stall watch's (no await since the check)
                    await self._stream(resp, dest, PartFile(folder, dest.name, target), seal,
                                       deadline)
        except PermanentDownloadError:
            self.forget(dest)
            discard(dest)
            raise
        except (ApiError, LocalWriteError):
            raise
        except aiohttp.ClientPayloadError as exc:
            raise self._cut(dest, f"download interrupted: {exc or type(exc).__name__}") from None
        except asyncio.TimeoutError:
            if time.monotonic() - started >= left:
                raise self._cut(dest, f"download ran out of its {self.limits.deadline_seconds:g}"
                                      " s") from None
            raise self._cut(dest, f"download stalled: no data for "
                                  f"{self.limits.stall_seconds:g} s") from None
        except aiohttp.ClientError as exc:
            if self._partials.get(dest, kept).size > kept.call_start:
                raise self._cut(dest, str(transport_error(exc, url))) from None
            raise transport_error(exc, url) from None
        return self._finished(dest, target, folder)

    def _resumable(self, folder: OutputFolder, dest: Path, kept: Partial | None) -> Partial:
        """`kept` if the file on disk is still exactly those bytes, else a fresh start."""
        if kept is not None:
            try:
                if folder.lstat(dest.name).st_size == kept.size:
                    self._partials[dest] = kept
                    return kept
            except OSError:
                pass
            self._partials.pop(dest, None)
        return Partial()

    def _continues(self, resp: aiohttp.ClientResponse, dest: Path, kept: Partial) -> bool:
        """Whether a 206 is the rest of the object we hold part of."""
        first, total = _content_range(resp.headers.get("Content-Range"))
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if first == kept.size and (not kept.validator or validator == kept.validator) \
                and (kept.total is None or total == kept.total):
            return True
        # The server got If-Range wrong: forget the kept bytes; the next call asks for all.
        self._partials.pop(dest, None)
        raise TruncatedDownload("the server answered a resumed download with another part or "
                                "version of the file; starting over")

    async def _stream(self, resp: aiohttp.ClientResponse, dest: Path, part: PartFile,
                      seal: Callable[[], None], deadline: float | None) -> None:
        """Stream the body into `part`, cut at the loop time `deadline`, if any; `seal` runs
        in the last write of a complete body."""
        target = part.kept
        content_type = resp.headers.get("Content-Type", "")
        chunks: list[bytes] = []  # what arrived since the last write, as it arrived: no copy
        buffered = 0
        started = False  # whether the file holds target's bytes (and part may be open)
        closed = False
        writing: asyncio.Future[None] | None = None  # the piece on its way to the disk

        async def flush(last: bool = False, **then: bool) -> None:
            # Writes, hashes (and fsyncs, notes, closes: `then`) in one call into the file
            # threads: the event loop neither copies, hashes nor waits on the disk. A piece
            # is written while the next one arrives; one at a time, in order. The `last`
            # write of a complete body also seals the file, and is never abandoned midway.
            nonlocal chunks, buffered, started, closed, writing
            data, chunks, buffered = chunks, [], 0
            if not started:
                if not data:
                    return
                if target.size == 0:
                    _check_head(_head(data), content_type, self._scrub)
                self._partials[dest] = target  # from here on the file holds target's bytes
                started = True
            if writing is not None:
                before, writing = writing, None
                await self._outcome(dest, before)  # the piece before: its error surfaces here
            if last:
                await self._in_files(dest, _last_write, part, data, seal, outlast=True)
                closed = True
                return
            put = functools.partial(part.put, data, **then)
            if not then:
                writing = self._files.run(put)
                return
            await self._in_files(dest, put)
            closed = then.get("close", False)

        complete = False
        watch = StallWatch(resp, self.limits.stall_seconds, deadline)
        try:
            try:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    watch.arrived()
                    self._wire[dest] = self._wire.get(dest, 0) + len(chunk)
                    chunks.append(chunk)
                    buffered += len(chunk)
                    if target.size + buffered > self.limits.max_bytes:
                        raise _too_large(None, self.limits.max_bytes)
                    # At the end of the body the last write also syncs and closes (below).
                    if buffered >= _WRITE_SIZE and not resp.content.at_eof():
                        watch.busy = True
                        await flush()
                        watch.busy = False
                        watch.arrived()
                complete = True
            finally:
                watch.close()
                if complete:
                    await flush(last=True)
                # What arrived before a cut is good data: keep it for the resume (a fresh
                # file needs its first 8 bytes to show it is an MP4), durable and noted.
                elif started or target.size or buffered >= 8:
                    await flush(note=True, close=True)
        finally:
            if writing is not None:  # left behind by a second cancellation: not awaited
                # The file is closed after it anyway: nothing else to do with its outcome.
                writing.add_done_callback(retrieved)
            if started and not closed:  # the last write failed or was cancelled
                self._files.run(part.close).add_done_callback(retrieved)

    def _unsatisfiable(self, resp: aiohttp.ClientResponse, dest: Path,
                       kept: Partial) -> Downloaded:
        # 416 to `bytes=N-`: either we already hold the whole object (a Content-Length
        # larger than the body misled us) or it shrank; `bytes */SIZE` says which.
        _, total = _content_range(resp.headers.get("Content-Range"))
        if total == kept.size:
            kept.total = total
            return self._finished(dest, kept)
        self._partials.pop(dest, None)
        raise TruncatedDownload("the server no longer has the bytes a resumed download asked "
                                "for; starting over")

    def _finished(self, dest: Path, target: Partial,
                  folder: fsutil.Folder | None = None) -> Downloaded:
        if target.total is not None and target.size != target.total:
            raise self._cut(dest, f"download ended after {target.size} of {target.total} bytes")
        if target.size == 0:
            self._partials.pop(dest, None)
            raise TruncatedDownload("download was empty")
        self._partials.pop(dest, None)
        self._began.pop(dest, None)
        return _downloaded(target, self._wire.pop(dest, 0), folder)

    @staticmethod
    def _seal(folder: OutputFolder, name: str, got: Downloaded, then: Finish | None) -> None:
        """In the file threads, the whole file on disk: its resume note, if it has one, is of
        no use any more; then the caller's `then`."""
        folder.remove_note(name)
        if then is not None:
            then(got)

    async def _open_folder(self, dest: Path) -> OutputFolder:
        """The folder of `dest`, opened in the file threads by the first download into it."""
        directory = dest.parent
        opening = self._opening.get(directory)
        if opening is None:
            opening = self._opening[directory] = asyncio.ensure_future(
                self._in_files(dest, OutputFolder, directory, named=False))
        try:
            # Shielded: one download's cancellation must not fail the others waiting on it.
            folder = await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening.get(directory) is opening:
                del self._opening[directory]  # failed: the next download tries again
                if not opening.cancelled() and opening.exception() is None:
                    self._folders[directory] = opening.result()
        return folder

    async def _in_files(self, dest: Path, function: Callable[..., T], *args: Any,
                        named: bool = True, outlast: bool = False) -> T:
        """`function(*args)` in the file threads (waited for to its end even when cancelled,
        if `outlast`); an OSError becomes a LocalWriteError naming the file and the fix: the
        file beside `dest` that the error names (`named`: the resume note, say), else
        `dest`."""
        return await self._outcome(dest, self._files.run(function, *args), named=named,
                                   outlast=outlast)

    async def _outcome(self, dest: Path, future: asyncio.Future[T], *, named: bool = True,
                       outlast: bool = False) -> T:
        """The result of file work `future`, as `_in_files` gives it."""
        try:
            return await (outlast_cancellation(future) if outlast else future)
        except OSError as exc:
            path = dest
            if named and isinstance(exc.filename, str):
                path = dest.with_name(os.path.basename(exc.filename))
            raise local_error(exc, path) from None

    def close(self) -> None:
        """Let go of the folders: each closes once no file thread uses it any more."""
        self._folders.clear()

    def _cut(self, dest: Path, message: str) -> TruncatedDownload:
        """A transient error for a cut transfer: says how far the file got, and how much this
        call added (a caller resumes at once after real progress)."""
        kept = self._partials.get(dest)
        if kept is None:
            return TruncatedDownload(message)
        total = f" of {kept.total}" if kept.total is not None else ""
        return TruncatedDownload(f"{message} ({kept.size}{total} bytes kept for a resume)",
                                 progressed=kept.size - kept.call_start)

    def forget(self, dest: Path) -> None:
        """Drop what is known about `dest` (its caller deleted the file)."""
        self._partials.pop(dest, None)
        self._wire.pop(dest, None)
        self._began.pop(dest, None)


def _check_answer(resp: aiohttp.ClientResponse, scrub: Callable[[str], str]) -> None:
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise NotAVideo(f"the server sent the video {scrub(encoding)[:40]}-encoded although "
                        "asked not to (Accept-Encoding: identity)")


def _check_head(head: bytes, content_type: str, scrub: Callable[[str], str]) -> None:
    """An MP4 starts with an `ftyp` box: 4 bytes of size, then b"ftyp"."""
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return
    # Scrubbed before it is cut short, so no part of a key survives the cut.
    shown = scrub(head[:512].decode("latin-1").replace("\n", " "))[:40]
    kind = f" ({scrub(content_type)[:60]})" if content_type else ""
    raise NotAVideo(f"the result URL served something that is not an MP4{kind}, starting "
                    f"{shown!r}")


def _last_write(part: PartFile, data: list[bytes], seal: Callable[[], None]) -> None:
    part.put(data, sync=True, close=True)
    seal()


def _whole(target: Partial) -> bool:
    """Whether `target` holds the whole object (else `_finished` says what is missing)."""
    return target.size > 0 and (target.total is None or target.size == target.total)


def _downloaded(target: Partial, received: int,
                folder: fsutil.Folder | None = None) -> Downloaded:
    return Downloaded(bytes=target.size, sha256=target.digest.hexdigest(), received=received,
                      folder=folder)


def _head(chunks: list[bytes], size: int = 512) -> bytes:
    """The first `size` bytes of `chunks`, copying no more than that."""
    head = b""
    for chunk in chunks:
        head += chunk[:size - len(head)]
        if len(head) >= size:
            break
    return head


def _too_large(announced: int | None, cap: int) -> PermanentDownloadError:
    size = f"{announced} bytes" if announced is not None else "more than that"
    return PermanentDownloadError(
        f"the video is {size}, over the {cap}-byte cap; raise {MAX_VIDEO_BYTES_ENV} if it is "
        "really that large")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of `bytes A-B/N` or `bytes */N`; None where unknown."""
    if not value:
        return None, None
    unit, _, spec = value.strip().partition(" ")
    if unit.lower() != "bytes":
        return None, None
    span, _, total_text = spec.partition("/")
    first_text = span.partition("-")[0]
    try:
        first = int(first_text) if first_text not in ("", "*") else None
        total = int(total_text) if total_text.strip() not in ("", "*") else None
    except ValueError:
        return None, None
    return first, total


def _total_size(resp: aiohttp.ClientResponse, start: int) -> int | None:
    if resp.status == 206:
        total = _content_range(resp.headers.get("Content-Range"))[1]
        if total is not None:
            return total
    return None if resp.content_length is None else start + resp.content_length


# -- the file on disk --------------------------------------------------------------------------

def _resume_note(dest: Path) -> Path:
    return dest.with_name(note_name(dest.name))


def discard(dest: Path) -> None:
    """Remove a `.part` and its resume note (a file that will never be resumed); never
    the run's end (a read-only folder keeps them)."""
    for path in (dest, _resume_note(dest)):
        with contextlib.suppress(OSError):
            fsutil.remove_file(path)


def keep_for_resume(dest: Path) -> None:
    """After an unfinished or interrupted download: keep the `.part` when a later run can
    resume it (its note names the object), else remove it."""
    if not _resume_note(dest).is_file():
        discard(dest)


_FIXES = {
    errno.ENOSPC: "no space left on the device; free some space and rerun",
    errno.EDQUOT: "disk quota exceeded; free some space and rerun",
    errno.EACCES: "permission denied; make the folder writable or choose another --output-dir",
    errno.EPERM: "operation not permitted; make the folder writable or choose another "
                 "--output-dir",
    errno.EROFS: "the file system is read-only; choose another --output-dir",
    errno.ENAMETOOLONG: "the file name is too long for this file system; use a shorter job id",
    errno.ELOOP: "it is a symbolic link; octobatch never writes through one: remove it",
}


def local_error(exc: OSError, path: Path) -> LocalWriteError:
    """`exc` from writing `path` as a message that names the path and the fix."""
    fix = _fix(exc)
    return LocalWriteError(f"cannot write {path}: {fix} (the task is kept; the rerun "
                           "downloads it without paying again)")


def _fix(exc: OSError) -> str:
    if isinstance(exc, fsutil.SymlinkRefused):
        return str(exc)  # names the link, which may be a folder on the way
    return _FIXES.get(exc.errno or 0, exc.strerror or str(exc))


def place(partial: Path, final: Path, opened: fsutil.Folder | None = None) -> None:
    """Move a finished download into place; never through a symlink at `final`. `opened`:
    the folder of both, already open (else it is opened here)."""
    try:
        held = opened.fd if opened and opened.path == final.parent.absolute() else None
        folder = fsutil.open_dir(final.parent) if held is None else held  # refuses a link
        try:
            if stat.S_ISLNK(os.lstat(final.name, dir_fd=folder).st_mode):
                raise fsutil.SymlinkRefused(final)
        except FileNotFoundError:
            pass
        try:
            os.replace(partial.name, final.name, src_dir_fd=folder, dst_dir_fd=folder)
        finally:
            if held is None:
                os.close(folder)
    except OSError as exc:
        raise local_error(exc, final) from None


def check_output_dir(directory: Path, *, root: Path | None = None) -> None:
    """Fail before anything is paid for when `directory` cannot take a file, or is reached
    through a symlink below `root` (see `fsutil.open_dir`)."""
    probe = directory / f".octobatch-write-check-{os.getpid()}"
    try:
        fsutil.make_dirs(directory, root=root)
        os.close(fsutil.open_file(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                  root=root))
        fsutil.remove_file(probe, root=root)
    except OSError as exc:
        fix = _fix(exc)
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            fix = "it, or a folder above it, is a file; choose another --output-dir"
        raise OctobatchError(f"cannot write to the output folder {directory}: {fix}; nothing "
                             "was submitted") from None


def name_fits(directory: Path, job_id: str) -> bool:
    """Whether `.<id>.mp4.part`, the longest name a job writes, fits this file system."""
    return len(f".{job_id}.mp4.part".encode()) <= _name_max(directory)


@functools.lru_cache(maxsize=64)
def _name_max(directory: Path) -> int:
    # Asked once per folder, not once per job: a folder's file system does not change
    # during a run, and each call would be a system call on the event loop.
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255
