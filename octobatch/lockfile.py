"""The lockfile (`name.lock.json`, committed) and its append-only journal.

Contract fields of each job entry: spec_hash, model, status, task_id, video_url, output,
sha256, bytes, attempts, error, submitted_at, completed_at. Extra fields: `spec` (the canonical
request that was hashed, so `plan` can name changed fields), `idempotency_key`,
`possible_duplicate`.

Every state change is one JSON line appended to `name.lock.journal` (O(1) per event); the
lockfile is rewritten only on compaction, atomically, when the journal has outgrown it. Journal
records set absolute values, so replaying a record twice (a crash between replacing the lockfile
and truncating the journal) gives the same state.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import errno
import fcntl
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from octobatch.errors import StateError

LOCK_VERSION = 1
# Compaction happens once the journal is larger than the lockfile and this floor, so a run pays
# for each whole-lockfile rewrite with at least as many bytes of O(1) appends (amortised O(1)).
COMPACT_MIN_BYTES = 64 * 1024


class Status(str, enum.Enum):
    PENDING = "pending"
    SUBMITTING = "submitting"  # journaled before the POST: a crash here means "maybe created"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"  # provider said so AND the checked file is on disk
    FAILED = "failed"
    UNCERTAIN = "uncertain"  # the POST may have created a task we never heard about


@dataclass
class LockEntry:
    spec_hash: str
    model: str
    status: Status = Status.PENDING
    task_id: str | None = None
    video_url: str | None = None
    output: str | None = None  # MP4 path relative to the lockfile's directory
    sha256: str | None = None
    bytes: int | None = None
    attempts: int = 0
    error: dict[str, str] | None = None  # {"code", "message"}
    submitted_at: str | None = None  # ISO 8601 UTC
    completed_at: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    possible_duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockEntry:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = Status(values.get("status", "pending"))
        return cls(**values)


@dataclass
class LockState:
    manifest: str  # manifest file name, relative to the lockfile's directory
    jobs: dict[str, LockEntry] = field(default_factory=dict)


def lock_path_for(manifest: Path) -> Path:
    """`path/name.yaml` -> `path/name.lock.json`."""
    return manifest.with_name(manifest.stem + ".lock.json")


def journal_path_for(lock_path: Path) -> Path:
    """`name.lock.json` -> `name.lock.journal` (JSON lines, not committed)."""
    return lock_path.with_name(lock_path.name.removesuffix(".json") + ".journal")


def run_lock_path_for(lock_path: Path) -> Path:
    """`name.lock.json` -> `name.lock.run` (the OS lock one run holds; not committed)."""
    return lock_path.with_name(lock_path.name.removesuffix(".json") + ".run")


# --- validation ---------------------------------------------------------------------------

_STR = (str,)
_OPT_STR = (str, type(None))
# bool is a subclass of int: checked separately so `"bytes": true` is rejected.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "spec_hash": _STR,
    "model": _STR,
    "status": _STR,
    "task_id": _OPT_STR,
    "video_url": _OPT_STR,
    "output": _OPT_STR,
    "sha256": _OPT_STR,
    "bytes": (int, type(None)),
    "attempts": (int,),
    "error": (dict, type(None)),
    "submitted_at": _OPT_STR,
    "completed_at": _OPT_STR,
    "spec": (dict,),
    "idempotency_key": _OPT_STR,
    "possible_duplicate": (bool,),
}
_REQUIRED = ("spec_hash", "model")
_STATUS_VALUES = {s.value for s in Status}


def _check_field(name: str, value: Any) -> None:
    """Raise ValueError or TypeError unless `value` is a valid JSON value for entry field `name`."""
    types = _FIELD_TYPES.get(name)
    if types is None:
        raise ValueError(f"unknown field {name!r}")
    if isinstance(value, Status):
        value = value.value
    if isinstance(value, bool) and bool not in types:
        raise ValueError(f"{name}: expected {_type_names(types)}, got a boolean")
    if not isinstance(value, types):
        raise TypeError(f"{name}: expected {_type_names(types)}, got {type(value).__name__}")
    if name == "status" and value not in _STATUS_VALUES:
        raise ValueError(f"status: {value!r} is not one of {', '.join(sorted(_STATUS_VALUES))}")


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", dict: "object", bool: "boolean", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _entry_from_json(data: Any) -> LockEntry:
    """A validated entry; unknown keys are ignored so older versions can read newer files."""
    if not isinstance(data, dict):
        raise TypeError(f"expected an object, got {type(data).__name__}")
    for name in _REQUIRED:
        if name not in data:
            raise ValueError(f"missing {name}")
    for name, value in data.items():
        if name in _FIELD_TYPES:
            _check_field(name, value)
    return LockEntry.from_json(data)


# --- lockfile -------------------------------------------------------------------------------


def render_lockfile(state: LockState) -> bytes:
    """The exact bytes of a lockfile: sorted keys, fixed indentation, trailing newline."""
    doc = {
        "version": LOCK_VERSION,
        "manifest": state.manifest,
        "jobs": {job_id: entry.to_json() for job_id, entry in state.jobs.items()},
    }
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def parse_lockfile(text: str | bytes, lock_path: Path, manifest_name: str) -> LockState:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("expected a JSON object at the top level")
        if data.get("version") != LOCK_VERSION:
            raise ValueError(f"unsupported version {data.get('version')!r}, expected {LOCK_VERSION}")
        manifest = data.get("manifest", manifest_name)
        if not isinstance(manifest, str):
            raise TypeError("manifest: expected a string")
        raw_jobs = data.get("jobs", {})
        if not isinstance(raw_jobs, dict):
            raise TypeError("jobs: expected an object")
        jobs: dict[str, LockEntry] = {}
        for job_id, raw in raw_jobs.items():
            try:
                jobs[job_id] = _entry_from_json(raw)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"job {job_id!r}: {exc}") from None
    except (ValueError, TypeError) as exc:  # JSON and UTF-8 decoding errors are ValueErrors
        raise StateError(
            f"{lock_path}: not a valid octobatch lockfile ({exc}); "
            "restore it from git (git checkout -- <file>) or move it away to start fresh"
        ) from None
    return LockState(manifest=manifest, jobs=jobs)


def read_lockfile(lock_path: Path, manifest_name: str) -> LockState:
    """Read the committed lockfile; a missing one is an empty state."""
    try:
        text = lock_path.read_bytes()
    except FileNotFoundError:
        return LockState(manifest=manifest_name)
    except OSError as exc:
        raise StateError(f"{lock_path}: cannot read lockfile: {exc.strerror}") from None
    return parse_lockfile(text, lock_path, manifest_name)


def write_lockfile(path: Path, state: LockState) -> bool:
    """Atomically replace `path` with `state`, only if the bytes differ; return whether it did."""
    return _write_if_changed(path, render_lockfile(state))


def _write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    _atomic_write(path, data)
    return True


def _atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over, fsync the directory.

    A reader sees the old file or the new one, never a mix; after a crash the file is one of
    the two, never empty (the rename is durable only once the directory is fsynced). The temp
    name is fixed: only the holder of the run lock writes, and a temp file left by a killed
    writer is simply overwritten.
    """
    tmp = _temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StateError(f"{path}: cannot write lockfile: {exc.strerror}") from None
    _fsync_dir(path.parent)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- journal --------------------------------------------------------------------------------


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _apply(state: LockState, record: Any) -> None:
    """Apply one journal record; raise ValueError or TypeError if it is not a valid record."""
    if not isinstance(record, dict) or not isinstance(record.get("job"), str):
        raise TypeError("expected an object with a string 'job'")
    op, job_id = record.get("op"), record["job"]
    if op == "put":
        state.jobs[job_id] = _entry_from_json(record.get("entry"))
    elif op == "update":
        changes = record.get("set")
        if not isinstance(changes, dict):
            raise TypeError("update: expected an object 'set'")
        for name, value in changes.items():
            _check_field(name, value)
        entry = state.jobs.get(job_id)
        # Absent only when a crash replays records the lockfile already holds, and a later
        # record of the same replay removes the job again: nothing to apply.
        if entry is not None:
            _set_fields(entry, changes)
    elif op == "remove":
        state.jobs.pop(job_id, None)
    else:
        raise ValueError(f"unknown op {op!r}")


def _set_fields(entry: LockEntry, changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        setattr(entry, name, Status(value) if name == "status" else value)


def _replay(state: LockState, data: bytes, journal_path: Path) -> int:
    """Apply every complete line of `data` to `state`; return the length of the good prefix.

    Only newline-terminated lines count: a crash mid-append leaves a torn last line, which is
    dropped (its sync never returned). A bad line anywhere else is corruption.
    """
    good = data.rfind(b"\n") + 1
    for number, line in enumerate(data[:good].split(b"\n")[:-1], start=1):
        try:
            _apply(state, json.loads(line))
        except (ValueError, TypeError) as exc:
            raise StateError(
                f"{journal_path}:{number}: corrupt journal record ({exc}); the lockfile "
                "beside it is intact: move the journal away to fall back to the lockfile "
                "(changes recorded since the last compaction are lost; check `octobatch status`)"
            ) from None
    return good


def _read_journal(journal_path: Path) -> bytes:
    try:
        return journal_path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise StateError(f"{journal_path}: cannot read journal: {exc.strerror}") from None


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def load_state(manifest: Path) -> LockState:
    """The current state of a manifest's jobs: the lockfile with the journal replayed.

    Read-only and lock-free (for `plan` and `status`), so a run may compact meanwhile: if the
    lockfile was replaced while we read, read again.
    """
    lock_path = lock_path_for(manifest)
    journal_path = journal_path_for(lock_path)
    for _ in range(5):
        before = _file_identity(lock_path)
        state = read_lockfile(lock_path, manifest.name)
        data = _read_journal(journal_path)
        if _file_identity(lock_path) == before:
            break
    _replay(state, data, journal_path)
    return state


# --- the store ------------------------------------------------------------------------------


class StateStore:
    """The state of one manifest's jobs, held by exactly one run.

    Changes (`put`, `update`, `remove`) apply in memory at once and are queued as journal lines;
    `sync()` makes them durable. Concurrent `sync()` callers share one write+fsync (group
    commit), done in a worker thread so the event loop keeps polling meanwhile.
    """

    def __init__(
        self,
        manifest_path: Path,
        lock_path: Path,
        state: LockState,
        run_lock_fd: int,
        journal_fd: int,
        journal_size: int,
        compact_min_bytes: int,
    ) -> None:
        self.manifest_path = manifest_path
        self.lock_path = lock_path
        self.journal_path = journal_path_for(lock_path)
        self.lock_dir = lock_path.parent
        self.state = state
        self.bytes_written = 0
        self.fsyncs = 0  # journal fsyncs, counted so tests can check group commit
        self.compactions = 0
        self._run_lock_fd: int | None = run_lock_fd
        self._journal_fd = journal_fd
        self._journal_size = journal_size
        self._compact_min_bytes = compact_min_bytes
        self._lock_size = _size(lock_path)
        # (seq, line) pairs not yet written. Appended only by the owning thread, drained by
        # whichever thread flushes: deque append/popleft are thread-safe.
        self._pending: collections.deque[tuple[int, bytes]] = collections.deque()
        self._seq = 0  # last change made
        self._written = 0  # last change written to the journal
        self._durable = 0  # last change written and fsynced (or folded into the lockfile)
        self._io_lock = threading.Lock()
        self._flush_task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, manifest_path: Path, *, compact_min_bytes: int = COMPACT_MIN_BYTES) -> StateStore:
        """Take the run lock, load the lockfile, replay the journal, then fold it in."""
        lock_path = lock_path_for(manifest_path)
        run_lock_fd = _take_run_lock(run_lock_path_for(lock_path), manifest_path)
        try:
            state = read_lockfile(lock_path, manifest_path.name)
            journal_path = journal_path_for(lock_path)
            good = _replay(state, _read_journal(journal_path), journal_path)
            try:
                journal_fd = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
                os.ftruncate(journal_fd, good)  # drop a torn tail before appending after it
                # A new journal's directory entry must be durable too, or a power cut could
                # take the whole file, fsynced records and all.
                _fsync_dir(lock_path.parent)
            except OSError as exc:
                raise StateError(f"{journal_path}: cannot open journal: {exc.strerror}") from None
        except BaseException:
            os.close(run_lock_fd)
            raise
        store = cls(manifest_path, lock_path, state, run_lock_fd, journal_fd, good, compact_min_bytes)
        _temp_path(lock_path).unlink(missing_ok=True)  # left by a writer killed mid-compaction
        if good:
            store.compact()
        return store

    # -- changes --

    # Each change is validated and encoded before the in-memory state moves, so a rejected
    # change leaves memory and journal in step.

    def put(self, job_id: str, entry: LockEntry) -> None:
        data = entry.to_json()  # a deep copy: later changes to `entry` do not leak in unjournaled
        copy = _entry_from_json(data)
        self._queue({"op": "put", "job": job_id, "entry": data})
        self.state.jobs[job_id] = copy

    def update(self, job_id: str, **changes: Any) -> None:
        entry = self.state.jobs[job_id]
        encoded: dict[str, Any] = {}
        for name, value in changes.items():
            _check_field(name, value)
            encoded[name] = value.value if isinstance(value, Status) else value
        self._queue({"op": "update", "job": job_id, "set": encoded})
        _set_fields(entry, encoded)

    def remove(self, job_id: str) -> None:
        if job_id not in self.state.jobs:
            raise KeyError(job_id)
        self._queue({"op": "remove", "job": job_id})
        del self.state.jobs[job_id]

    def _queue(self, record: dict[str, Any]) -> None:
        if self._run_lock_fd is None:
            raise RuntimeError(f"{self.lock_path}: state store used after close()")
        seq = self._seq + 1
        self._pending.append((seq, _encode(record)))
        self._seq = seq

    # -- durability --

    async def sync(self) -> None:
        """Return once every change made so far is fsynced; concurrent callers share a flush."""
        target = self._seq
        while self._durable < target:
            if self._flush_task is None:
                self._flush_task = asyncio.get_running_loop().create_task(self._flush_off_loop())
            # shield: a cancelled caller (Ctrl-C) must not abort a write others wait on.
            await asyncio.shield(self._flush_task)

    async def _flush_off_loop(self) -> None:
        try:
            await asyncio.to_thread(self._flush)
            if self._should_compact():
                seq, data = self._seq, render_lockfile(self.state)  # snapshot on the loop thread
                await asyncio.to_thread(self._compact_to, seq, data)
        finally:
            self._flush_task = None

    def sync_now(self) -> None:
        """Blocking `sync()`, for signal and shutdown paths."""
        self._flush()

    def _flush(self) -> None:
        with self._io_lock:
            if self._run_lock_fd is None:
                return  # closed: close() flushed everything
            batch: list[tuple[int, bytes]] = []
            while self._pending:
                batch.append(self._pending.popleft())
            if not batch:
                return
            data = b"".join(line for _, line in batch)
            try:
                _write_all(self._journal_fd, data)
                os.fsync(self._journal_fd)
            except OSError as exc:
                # Cut off what part of the batch got written and keep it queued, so a retry
                # (or close) writes whole lines instead of leaving a corrupt one mid-journal.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._journal_fd, self._journal_size)
                self._pending.extendleft(reversed(batch))
                raise StateError(
                    f"{self.journal_path}: cannot write journal: {exc.strerror}; "
                    "free space or fix permissions, then rerun to resume"
                ) from None
            self.fsyncs += 1
            self.bytes_written += len(data)
            self._journal_size += len(data)
            self._written = self._durable = batch[-1][0]

    # -- compaction --

    def _should_compact(self) -> bool:
        return self._journal_size > max(self._compact_min_bytes, self._lock_size)

    def maybe_compact(self) -> None:
        if self._should_compact():
            self.compact()

    def compact(self) -> None:
        """Fold every change into the lockfile (atomically, only if it changed), empty the journal."""
        self._compact_to(self._seq, render_lockfile(self.state))

    def _compact_to(self, seq: int, data: bytes) -> None:
        """Write the snapshot `data` (every change up to `seq`) and drop the journal it covers."""
        with self._io_lock:
            if self._run_lock_fd is None or self._written > seq:
                return  # closed, or newer changes reached the journal since the snapshot
            if _write_if_changed(self.lock_path, data):
                self.bytes_written += len(data)
            self._lock_size = len(data)
            while self._pending and self._pending[0][0] <= seq:
                self._pending.popleft()
            # Durable now, in the lockfile; if truncating fails, replaying the old journal
            # over the new lockfile changes nothing.
            self._written = self._durable = max(self._durable, seq)
            try:
                os.ftruncate(self._journal_fd, 0)
                os.fsync(self._journal_fd)
            except OSError as exc:
                raise StateError(f"{self.journal_path}: cannot truncate journal: {exc.strerror}") from None
            self._journal_size = 0
            self.compactions += 1

    def close(self) -> None:
        """Sync, compact and release the run lock; safe to call twice."""
        if self._run_lock_fd is None:
            return
        try:
            self.sync_now()
            self.compact()
        finally:
            with self._io_lock:
                os.close(self._journal_fd)
                os.close(self._run_lock_fd)  # closing the descriptor releases the flock
                self._run_lock_fd = None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _take_run_lock(path: Path, manifest: Path) -> int:
    """Hold an exclusive flock on `path`; the kernel drops it when the process dies."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
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
        raise StateError(
            f"another octobatch run is already using {manifest} (pid {holder}); "
            "wait for it to finish or stop it"
        ) from None
    # The pid is informational only (for the message above); the flock is the lock.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
