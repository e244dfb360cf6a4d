"""The state store behind its backend seam: another backend, and compaction off the loop."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path

import pytest
from planted import assert_untouched, plant

from octobatch.errors import StateError
from octobatch.state import (
    LocalFiles,
    LockEntry,
    StateStore,
    Status,
    Stored,
    journal_path_for,
    load_state,
    lock_path_for,
)


class MemoryBackend:
    """A whole backend in a few lines: what a remote one (a bucket, a database) has to do."""

    def __init__(self) -> None:
        self.snapshot: bytes | None = None
        self.journal = b""
        self.locked = False
        self.snapshot_name, self.journal_name = "memory:lock", "memory:journal"

    def read(self) -> Stored:
        return Stored(self.snapshot, self.journal)

    def lock(self) -> None:
        if self.locked:
            raise StateError("another octobatch run is already using memory")
        self.locked = True

    def begin(self, keep: int) -> None:
        self.journal = self.journal[:keep]

    def append(self, data: bytes) -> None:
        self.journal += data

    def write_snapshot(self, data: bytes) -> bool:
        changed, self.snapshot = data != self.snapshot, data
        return changed

    def trim_journal(self, covered: int) -> None:
        self.journal = self.journal[covered:]

    def close(self) -> None:
        self.locked = False


def entry(n: int) -> LockEntry:
    return LockEntry(spec_hash=f"sha256:{n}", model="omni-fast", spec={"prompt": f"shot {n}"})


async def test_the_store_runs_on_another_backend(tmp_path: Path) -> None:
    backend = MemoryBackend()
    manifest = tmp_path / "spring.yaml"
    store = StateStore.open(manifest, backend=backend, compact_min_bytes=500)
    with pytest.raises(StateError, match="already using memory"):
        StateStore.open(manifest, backend=backend)
    for i in range(30):
        store.put(f"job{i}", entry(i))
        store.task_recorded(f"job{i}", task_id=f"video_{i}", status=Status.QUEUED, attempts=1,
                            submitted_at="2026-01-02T03:04:05Z")
        await store.sync()
    assert store.compactions >= 1 and backend.snapshot is not None
    assert backend.journal  # the changes since the last compaction
    # A run killed now: a new store replays the memory journal over the memory snapshot.
    backend.close()
    again = StateStore.open(manifest, backend=backend)
    assert again.state == store.state
    assert load_state(manifest, backend=backend) == store.state
    again.close()
    assert backend.journal == b"" and not backend.locked
    assert not list(tmp_path.iterdir())  # nothing went to the local disk


class ThreadRecordingFiles(LocalFiles):
    """The real local backend, noting which thread writes each lockfile snapshot."""

    def __init__(self, manifest: Path) -> None:
        super().__init__(manifest)
        self.snapshot_threads: list[int] = []

    def write_snapshot(self, data: bytes) -> bool:
        self.snapshot_threads.append(threading.get_ident())
        return super().write_snapshot(data)


async def test_compaction_during_a_run_never_runs_on_the_event_loop(tmp_path: Path) -> None:
    manifest = tmp_path / "spring.yaml"
    backend = ThreadRecordingFiles(manifest)
    store = StateStore.open(manifest, backend=backend, compact_min_bytes=1000)

    async def job(i: int) -> None:
        store.put(f"job{i}", entry(i))
        store.submitting(f"job{i}")
        await store.sync()
        store.task_recorded(f"job{i}", task_id=f"video_{i}", status=Status.QUEUED, attempts=1,
                            submitted_at="2026-01-02T03:04:05Z")
        await store.sync()

    for start in range(0, 200, 8):
        await asyncio.gather(*(job(i) for i in range(start, start + 8)))
    loop_thread = threading.get_ident()
    assert store.compactions >= 3
    assert backend.snapshot_threads and loop_thread not in backend.snapshot_threads
    store.close()  # closing compacts, on the caller's thread, by design
    assert backend.snapshot_threads[-1] == loop_thread
    assert load_state(manifest) == store.state


class HeldSnapshots(LocalFiles):
    """The real local backend, whose lockfile writes wait until the test lets them go."""

    def __init__(self, manifest: Path) -> None:
        super().__init__(manifest)
        self.writing = threading.Event()
        self.go = threading.Event()

    def write_snapshot(self, data: bytes) -> bool:
        self.writing.set()
        assert self.go.wait(30), "the test never let the snapshot go"
        return super().write_snapshot(data)


async def _fill_until_compaction(store: StateStore, backend: HeldSnapshots) -> int:
    """Changes, synced one by one, until a compaction starts; the number of jobs made."""
    i = 0
    while not backend.writing.is_set():
        store.put(f"job{i}", entry(i))
        await store.sync()
        i += 1
        await asyncio.sleep(0.001)  # lets the compaction's thread start
    return i


async def test_syncs_go_on_while_a_compaction_writes_the_lockfile(tmp_path: Path,
                                                                  victim: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    manifest = project / "spring.yaml"
    temp = journal_path_for(lock_path_for(manifest)).with_name(".spring.lock.journal.tmp")
    plant(temp, victim)  # left by someone else: removed when the run starts, not followed
    backend = HeldSnapshots(manifest)
    store = StateStore.open(manifest, backend=backend, compact_min_bytes=600)
    made = await _fill_until_compaction(store, backend)
    # The lockfile write is stuck: submissions, which wait for their sync, must not be.
    for i in range(made, made + 20):
        store.put(f"job{i}", entry(i))
        store.submitting(f"job{i}")
        await asyncio.wait_for(store.sync(), 10)
    during = journal_path_for(lock_path_for(manifest)).read_bytes()
    plant(temp, victim)  # and planted again mid-run, where the trimmed journal is written
    backend.go.set()
    await store.compaction_done()
    assert store.compactions == 1
    # The journal keeps what came after the snapshot (and at most the batch across it), so
    # the lockfile plus the journal is still the whole state; the rest was trimmed off.
    after = journal_path_for(lock_path_for(manifest)).read_bytes()
    assert b'"job%d"' % (made + 19) in after and len(after) < len(during)
    assert load_state(manifest) == store.state
    store.close()
    assert load_state(manifest) == store.state
    assert not [p.name for p in project.iterdir() if p.name.endswith(".tmp")]
    assert_untouched(victim)


class FailingTrim(HeldSnapshots):
    """The local backend, on a disk that fails while the journal is being trimmed."""

    def trim_journal(self, covered: int) -> None:
        real = os.fsync

        def failing(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        os.fsync = failing  # the new journal cannot be made durable
        try:
            super().trim_journal(covered)
        finally:
            os.fsync = real


async def test_a_failed_trim_stops_the_run_and_loses_no_synced_change(tmp_path: Path) -> None:
    manifest = tmp_path / "spring.yaml"
    backend = FailingTrim(manifest)
    store = StateStore.open(manifest, backend=backend, compact_min_bytes=600)
    made = await _fill_until_compaction(store, backend)
    store.put(f"job{made}", entry(made))
    await store.sync()  # written while the compaction waits: part of the tail to keep
    synced = dict(store.state.jobs)
    backend.go.set()
    await store.compaction_done()
    assert store.compactions == 0
    # Whether the journal was cut is not known: no further change may count as durable.
    store.put("later", entry(999))
    with pytest.raises(StateError, match=r"cannot trim journal: Input/output error; rerun"):
        await store.sync()
    backend.close()
    assert load_state(manifest).jobs == synced  # the lockfile and journal on disk hold all


class HeldAppends(MemoryBackend):
    """A backend whose journal writes wait until the test lets them go."""

    def __init__(self) -> None:
        super().__init__()
        self.writing, self.go = threading.Event(), threading.Event()

    def append(self, data: bytes) -> None:
        self.writing.set()
        assert self.go.wait(10), "the test never let the write go"
        super().append(data)


def test_a_loop_that_ends_during_a_journal_write_leaves_the_store_able_to_sync(
        tmp_path: Path) -> None:
    # The journal thread hands each write's outcome to the loop that asked for it; when that
    # loop is gone by then, the next loop's syncs must still start a write of their own.
    backend = HeldAppends()
    store = StateStore.open(tmp_path / "spring.yaml", backend=backend)

    async def ask_and_leave() -> None:
        store.put("cat", entry(1))
        store.sync_soon()
        assert await asyncio.to_thread(backend.writing.wait, 10)

    asyncio.run(ask_and_leave())  # the loop closes while the write is held
    backend.go.set()

    async def sync_again() -> None:
        store.put("dog", entry(2))
        await asyncio.wait_for(store.sync(), 10)

    asyncio.run(sync_again())
    assert b'"dog"' in backend.journal
    store.close()


async def test_the_journal_thread_ends_with_the_store(tmp_path: Path) -> None:
    before = set(threading.enumerate())

    def journal_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate()
                if t not in before and t.name.startswith("octobatch-journal")]

    store = StateStore.open(tmp_path / "spring.yaml", backend=MemoryBackend())
    store.put("cat", entry(1))
    await store.sync()
    assert journal_threads()
    store.close()
    for _ in range(300):  # well before an idle thread would end by itself (after 5 s)
        if not journal_threads():
            break
        await asyncio.sleep(0.01)
    assert not journal_threads()
