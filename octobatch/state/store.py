"""The state store: one run's view of a manifest's jobs, changed only by named transitions.

Each transition builds a new immutable entry, journals the one record that turns the old
entry into it, and then moves memory: a rejected change leaves memory and journal in step.
`sync()` makes the changes so far durable (group commit in the journal's own thread);
compaction (the whole lockfile rewritten, the journal trimmed to what came after it) is decided
here alone and runs in a worker thread, never on the event loop, while syncs go on.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from octobatch.filethreads import FileThreads
from octobatch.outlast import retrieved
from octobatch.paths import followed
from octobatch.state import journal
from octobatch.state.backend import Backend
from octobatch.state.entry import Decision, LockEntry, LockState, Review, Status, Take
from octobatch.state.files import LocalFiles, explain, lock_path_for
from octobatch.state.format import (
    FormatError,
    RenderCache,
    parse_lockfile,
    render_lockfile,
)

# Compaction happens once the journal is larger than the lockfile and this floor, so a run pays
# for each whole-lockfile rewrite with at least as many bytes of O(1) appends (amortised O(1)).
COMPACT_MIN_BYTES = 64 * 1024

_IN_FLIGHT = (Status.QUEUED, Status.RUNNING)


def load_state(manifest: Path, *, backend: Backend | None = None) -> LockState:
    """The current state of a manifest's jobs: the lockfile with the journal replayed.

    Read-only and lock-free (for `plan` and `status`), so it works while a run is going.
    """
    backend = backend or LocalFiles(manifest)
    state, _, _ = _load(backend, followed(manifest).name)
    return state


def _load(backend: Backend, manifest_name: str) -> tuple[LockState, int, int]:
    """The state, the length of the journal's good prefix and the size of the lockfile."""
    stored = backend.read()
    if stored.snapshot is None:
        state = LockState(manifest=manifest_name)
    else:
        try:
            state = parse_lockfile(stored.snapshot, manifest_name)
        except FormatError as exc:
            raise explain(exc, backend.snapshot_name) from None
    good = journal.replay(state, stored.journal, backend.journal_name)
    return state, good, len(stored.snapshot or b"")


class StateStore:
    """The state of one manifest's jobs, held by exactly one run (see the package docstring)."""

    def __init__(self, manifest_path: Path, backend: Backend, state: LockState,
                 journal_size: int, lock_size: int, compact_min_bytes: int) -> None:
        self.manifest_path = manifest_path
        self.lock_path = lock_path_for(manifest_path)
        self.lock_dir = self.lock_path.parent  # outputs are recorded relative to it
        self.state = state
        self._spent = state.spent  # kept up to date per change: the cost cap reads it per POST
        self.bytes_written = 0  # journal appends plus lockfile rewrites
        self.fsyncs = 0  # journal fsyncs, counted so tests can check group commit
        self.compactions = 0
        self._backend = backend
        self._open = True
        self._journal_size = journal_size
        self._lock_size = lock_size
        self._compact_min_bytes = compact_min_bytes
        # (seq, line) pairs not yet written. Appended only by the owning thread, drained by
        # whichever thread flushes: deque append/popleft are thread-safe.
        self._pending: collections.deque[tuple[int, bytes]] = collections.deque()
        self._seq = 0  # last change made
        self._written = 0  # last change written to the journal
        self._durable = 0  # last change written and synced (or folded into the lockfile)
        self._wanted = 0  # last change a caller of sync() waits for
        # (last change, journal size after it) of each batch written since the snapshot
        self._batches: collections.deque[tuple[int, int]] = collections.deque()
        self._snapshot_seq = -1  # last change the lockfile this store wrote holds
        self._io_lock = threading.Lock()  # the journal
        self._snapshot_lock = threading.Lock()  # the lockfile
        self._rendered: RenderCache = {}  # each entry's lockfile text, used under that lock
        # One thread of its own writes the journal, so a sync never queues behind other
        # threads' work; `_flushing` while it has a flush to finish.
        self._journal_thread = FileThreads(1, "octobatch-journal")
        self._flushing = False
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # the last to ask for one
        self._flush_lock = threading.Lock()  # a flush's end against a new loop's request
        # (last change it waits for, its future): each caller of sync() has its own, so a
        # cancelled caller (Ctrl-C) cancels no one else's wait, and no shield is needed.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._compact_task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, manifest_path: Path, *, compact_min_bytes: int = COMPACT_MIN_BYTES,
             backend: Backend | None = None) -> StateStore:
        """Take the run lock, load the lockfile, replay the journal, then fold it in."""
        backend = backend or LocalFiles(manifest_path)
        backend.lock()
        try:
            state, good, lock_size = _load(backend, followed(manifest_path).name)
            backend.begin(good)
        except BaseException:
            backend.close()
            raise
        store = cls(manifest_path, backend, state, good, lock_size, compact_min_bytes)
        if good:
            store.compact()
        return store

    # -- transitions: each journals one record (none if nothing changes) --

    def pending(self, job_id: str, *, spec_hash: str, model: str, spec: Mapping[str, Any],
                idempotency_key: str) -> LockEntry:
        """A fresh entry for a job about to be submitted (new, changed, retried, replaced).

        What the job has had stays: its takes (an older completed entry becomes take 1), its
        review and its recorded spend.
        """
        fresh = LockEntry(spec_hash=spec_hash, model=model, spec=spec,
                          idempotency_key=idempotency_key)
        old = self.state.jobs.get(job_id)
        if old is not None:
            fresh = replace(fresh, takes=old.take_history(), review=old.review, spent=old.spent)
        return self.put(job_id, fresh)

    def submitting(self, job_id: str, *, cost: float = 0.0) -> LockEntry:
        """Synced before the POST: a crash from here on means a task may exist. The POST's
        `cost` is counted now, with it, so no crash or rerun ever forgets a paid request."""
        entry = self.state.jobs[job_id]
        return self._change(job_id, status=Status.SUBMITTING, spent=_money(entry.spent + cost))

    def not_created(self, job_id: str, *, cost: float) -> LockEntry:
        """The provider certainly created nothing for the last POST (429, refused, 4xx):
        take back the `cost` that `submitting` counted for it."""
        entry = self.state.jobs[job_id]
        return self._change(job_id, spent=_money(max(entry.spent - cost, 0.0)))

    def task_recorded(self, job_id: str, *, task_id: str, status: Status, attempts: int,
                      submitted_at: str) -> LockEntry:
        """The provider answered a submission with `task_id` (queued or running)."""
        _check_in_flight(status)
        return self._change(job_id, task_id=task_id, status=status, attempts=attempts,
                            submitted_at=submitted_at, error=None)

    def uncertain(self, job_id: str, *, attempts: int) -> LockEntry:
        """`attempts` submissions went out and the last got no clear answer: maybe a task."""
        return self._change(job_id, status=Status.UNCERTAIN, attempts=attempts,
                            possible_duplicate=True)

    def back_to_pending(self, job_id: str) -> LockEntry:
        """Nothing was created after all (refused, throttled, submissions stopped)."""
        return self._change(job_id, status=Status.PENDING)

    def status_seen(self, job_id: str, status: Status) -> LockEntry:
        """A poll saw the task queued or running (per-poll progress is never recorded)."""
        _check_in_flight(status)
        return self._change(job_id, status=status)

    def awaiting_task(self, job_id: str) -> LockEntry:
        """The job's existing task is waited for again: its file went missing, or a task that
        outlived an earlier `--timeout` is still alive."""
        return self._change(job_id, status=Status.RUNNING, error=None)

    def completed(self, job_id: str, *, video_url: str, output: str, sha256: str, bytes: int,
                  completed_at: str, moved: Mapping[int, str] | None = None) -> LockEntry:
        """The whole file is on disk at `output` (relative to the lockfile), checked.

        It becomes the job's newest take (or refreshes the take of the same task, after a
        download again); `moved` says where earlier takes' files went (take -> output).
        """
        entry = self.state.jobs[job_id]
        if entry.task_id is None:
            raise ValueError(f"job {job_id!r}: completed before a task id was recorded")
        take = Take(0, entry.task_id, output, sha256, bytes, entry.spec_hash, completed_at,
                    entry.possible_duplicate)
        return self._change(job_id, status=Status.COMPLETED, video_url=video_url, output=output,
                            sha256=sha256, bytes=bytes, completed_at=completed_at, error=None,
                            takes=_with_take(entry.take_history(), take, moved or {}))

    def reviewed(self, job_id: str, *, decision: Decision | None, take: int | None,
                 at: str) -> LockEntry:
        """A person's decision about the job (and which take it is about)."""
        entry = self.state.jobs[job_id]
        if take is not None and take not in {t.take for t in entry.take_history()}:
            raise ValueError(f"job {job_id!r} has no take {take}")
        return self._change(job_id, review=Review(decision=decision, take=take, at=at))

    def take_selected(self, job_id: str, take: int, moved: Mapping[int, str]) -> LockEntry:
        """Take `take` is the job's result now: the top-level fields describe it. `moved`
        says where the files went (take -> output; the selected one's is `<id>.mp4`)."""
        entry = self.state.jobs[job_id]
        takes = tuple(replace(t, output=moved.get(t.take, t.output))
                      for t in entry.take_history())
        chosen = next((t for t in takes if t.take == take), None)
        if chosen is None:
            raise ValueError(f"job {job_id!r} has no take {take}")
        return self._change(job_id, takes=takes, task_id=chosen.task_id, output=chosen.output,
                            sha256=chosen.sha256, bytes=chosen.bytes,
                            completed_at=chosen.completed_at, video_url=None)

    def failed(self, job_id: str, code: str, message: str) -> LockEntry:
        return self._change(job_id, status=Status.FAILED, error={"code": code, "message": message})

    def put(self, job_id: str, entry: LockEntry) -> LockEntry:
        """Record `entry` whole, replacing what the job had (a fresh entry, an import)."""
        record = journal.put_record(job_id, entry)  # a copy: the store never aliases callers
        # The record's copies of the two mutable fields; the rest of an entry is immutable
        # already, so the entry need not be decoded again from the record.
        copied = record["entry"]
        stored = entry.changed(spec=copied["spec"], error=copied["error"])
        self._queue(record)
        self._set(job_id, stored)
        return stored

    def remove(self, job_id: str) -> None:
        """Drop an orphaned job (`run --prune`)."""
        if job_id not in self.state.jobs:
            raise KeyError(job_id)
        self._queue(journal.remove_record(job_id))
        self._spent -= self.state.jobs.pop(job_id).spent

    def _change(self, job_id: str, **changes: Any) -> LockEntry:
        old = self.state.jobs[job_id]
        new = old.changed(**changes)  # validates: a bad value raises before anything moves
        record = journal.update_record(job_id, old, new, changes)
        if record is not None:
            self._queue(record)
            self._set(job_id, new)
        return self.state.jobs[job_id]

    def _set(self, job_id: str, entry: LockEntry) -> None:
        old = self.state.jobs.get(job_id)
        self._spent += entry.spent - (old.spent if old else 0.0)
        self.state.jobs[job_id] = entry

    @property
    def spent(self) -> float:
        """The manifest's recorded spend, as `state.spent` computes it, in O(1)."""
        return _money(self._spent)

    def _queue(self, record: dict[str, Any]) -> None:
        if not self._open:
            raise RuntimeError(f"{self.lock_path}: state store used after close()")
        seq = self._seq + 1
        self._pending.append((seq, journal.encode(record)))
        self._seq = seq

    # -- durability --

    async def sync(self) -> None:
        """Return once every change made so far is durable; concurrent callers share a flush."""
        if self._durable < self._seq:
            await self.durable()

    def durable(self) -> asyncio.Future[None]:
        """A future of the caller's own, done once every change made so far is durable (or
        failed with the write's error); cancelling it stops neither the write nor others'
        waits."""
        future = asyncio.get_running_loop().create_future()
        if self._durable >= self._seq:
            future.set_result(None)
        else:
            self._waiters.append((self._seq, future))
            self.sync_soon()
        return future

    def sync_soon(self) -> None:
        """Start making every change so far durable, without waiting: a `sync()` after it
        waits for that write instead of starting one."""
        if self._durable < self._seq and self._open:
            self._wanted = max(self._wanted, self._seq)
            with self._flush_lock:
                self._flush_loop = asyncio.get_running_loop()
                if self._flushing:
                    return
                self._flushing = True
            self._journal_thread.run(self._flush_while_wanted).add_done_callback(retrieved)

    def _flush_while_wanted(self) -> None:
        """In the journal thread: write batch after batch while callers want more (one who
        arrives during a write is served by the next one at once), then hand the outcome
        straight to the loop (`_flushed`): every hop through the loop costs a busy run one
        of its iterations, often milliseconds each."""
        error: Exception | None = None
        try:
            while True:
                before = self._written
                self._flush()
                # A write that found nothing to write (a closed store) never spins here.
                if self._written >= self._wanted or self._written == before:
                    break
                self._to_loop(self._wake)
        except Exception as exc:  # noqa: BLE001 -- whatever failed, the waiting callers see it
            error = exc
        with self._flush_lock:
            if not self._to_loop(self._flushed, error):
                self._flushing = False  # nobody waits there: the next request starts afresh

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> bool:
        """Run `callback` on the loop that last asked for a flush, unless it is closed."""
        assert self._flush_loop is not None
        try:
            self._flush_loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            return False
        return True

    def _flushed(self, error: Exception | None) -> None:
        """On the loop, once the journal thread is done: wake the callers its writes cover
        (all of them with its `error`: the next sync() tries again); one who came after the
        last batch starts the next flush."""
        self._flushing = False
        self._wake(error)

    def _wake(self, error: Exception | None = None) -> None:
        """Settle the waits the writes so far cover, or all of them with the write's `error`
        (the next sync() tries again); on the loop."""
        waiters, self._waiters = self._waiters, []
        for target, future in waiters:
            if future.done():  # its caller was cancelled
                continue
            if error is not None:
                future.set_exception(error)
            elif self._durable >= target:
                future.set_result(None)
            else:
                self._waiters.append((target, future))
        if self._waiters:
            self.sync_soon()  # changes made after the last batch began: the next one
        if error is None:
            self._maybe_compact()

    def sync_now(self) -> None:
        """Blocking `sync()`, for signal and shutdown paths (never compacts)."""
        self._flush()

    def _flush(self) -> None:
        with self._io_lock:
            if not self._open:
                return  # closed: close() flushed everything
            batch: list[tuple[int, bytes]] = []
            while self._pending:
                batch.append(self._pending.popleft())
            if not batch:
                return
            data = b"".join(line for _, line in batch)
            try:
                self._backend.append(data)
            except BaseException:
                self._pending.extendleft(reversed(batch))  # a retry (or close) writes it whole
                raise
            self.fsyncs += 1
            self.bytes_written += len(data)
            self._journal_size += len(data)
            self._batches.append((batch[-1][0], self._journal_size))
            self._written = self._durable = batch[-1][0]

    # -- compaction --

    def _should_compact(self) -> bool:
        return self._journal_size > max(self._compact_min_bytes, self._lock_size)

    def _maybe_compact(self) -> None:
        """Start folding the journal into the lockfile in a worker thread, when it is due.
        Syncs go on meanwhile: the journal keeps what was written after the snapshot."""
        if self._compact_task is not None or not self._open or not self._should_compact():
            return
        # Entries are immutable, so a shallow copy is a consistent snapshot: the thread
        # renders it while the loop goes on changing the live state.
        seq, jobs = self._seq, dict(self.state.jobs)

        async def compact() -> None:
            try:
                await asyncio.to_thread(self._compact_to, seq, jobs)
            finally:
                self._compact_task = None

        self._compact_task = asyncio.get_running_loop().create_task(compact())
        # A compaction that failed is tried again later, and close() compacts anyway: the
        # journal still holds every change, so nothing depends on this one.
        self._compact_task.add_done_callback(retrieved)

    async def compaction_done(self) -> None:
        """Wait for the compaction in progress, if any (its failure is not raised here: the
        journal still holds every change, and the next sync reports a broken one)."""
        if self._compact_task is not None:
            await asyncio.wait([self._compact_task])

    def compact(self) -> None:
        """Fold every change into the lockfile now (blocking; `close()` does it)."""
        self._compact_to(self._seq, self.state.jobs)

    def _compact_to(self, seq: int, jobs: dict[str, LockEntry]) -> None:
        """Write the snapshot `jobs` (every change up to `seq`) and drop the part of the
        journal it covers."""
        with self._snapshot_lock:  # one snapshot at a time, never an older over a newer
            if not self._open or seq <= self._snapshot_seq:
                return
            data = render_lockfile(LockState(self.state.manifest, jobs), self._rendered)
            if self._backend.write_snapshot(data):
                self.bytes_written += len(data)
            self._snapshot_seq = seq
            self._lock_size = len(data)
            with self._io_lock:
                while self._pending and self._pending[0][0] <= seq:
                    self._pending.popleft()
                # Durable now, in the lockfile. The journal keeps the batches with changes
                # after `seq` (a batch across it whole: replaying a record twice changes
                # nothing); if trimming fails, replaying all of it over the new lockfile
                # changes nothing either.
                self._written = max(self._written, seq)
                self._durable = max(self._durable, seq)
                after = [(last, end) for last, end in self._batches if last > seq]
                covered = max((end for last, end in self._batches if last <= seq), default=0) \
                    if after else self._journal_size
                self._backend.trim_journal(covered)
                self._journal_size -= covered
                self._batches = collections.deque((last, end - covered) for last, end in after)
                self.compactions += 1

    def close(self) -> None:
        """Sync, compact and release the run lock; safe to call twice."""
        if not self._open:
            return
        try:
            self.sync_now()
            self.compact()
        finally:
            with self._io_lock:
                self._backend.close()
                self._open = False
            self._journal_thread.close()


def _with_take(takes: tuple[Take, ...], new: Take, moved: Mapping[int, str]) -> tuple[Take, ...]:
    kept = tuple(replace(t, output=moved.get(t.take, t.output)) for t in takes
                 if t.task_id != new.task_id)
    same = next((t for t in takes if t.task_id == new.task_id), None)
    number = same.take if same else max((t.take for t in takes), default=0) + 1
    return tuple(sorted((*kept, replace(new, take=number)), key=lambda t: t.take))


def _money(value: float) -> float:
    return round(value, 9)  # no float noise such as 0.30000000000000004 in the lockfile


def _check_in_flight(status: Status) -> None:
    if status not in _IN_FLIGHT:
        raise ValueError(f"expected queued or running, got {status.value}")
