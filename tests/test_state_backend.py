"""The state store behind its backend seam: another backend, and compaction off the loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from octobatch.errors import StateError
from octobatch.state import LocalFiles, LockEntry, StateStore, Status, Stored, load_state


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

    def clear_journal(self) -> None:
        self.journal = b""

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
