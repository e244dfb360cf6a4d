"""The journal: replay, torn tails, corruption, group commit, compaction and kill -9."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from octobatch.errors import StateError
from octobatch.state import (
    LockEntry,
    StateStore,
    Status,
    journal_path_for,
    load_state,
    lock_path_for,
    read_lockfile,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "spring.yaml"
    path.write_text("version: 1\njobs: []\n")
    return path


def journal(manifest: Path) -> Path:
    return journal_path_for(lock_path_for(manifest))


def entry(n: int) -> LockEntry:
    return LockEntry(spec_hash=f"sha256:{n}", model="omni-fast", spec={"prompt": f"shot {n}"})


def record_task(store: StateStore, job_id: str, task_id: str) -> None:
    store.task_recorded(job_id, task_id=task_id, status=Status.QUEUED, attempts=1,
                        submitted_at="2026-01-02T03:04:05Z")


def complete(store: StateStore, job_id: str) -> None:
    store.completed(job_id, video_url="https://cdn.example/v.mp4", output=f"out/{job_id}.mp4",
                    sha256="ab" * 32, bytes=1000, completed_at="2026-01-02T03:05:06Z")


async def test_synced_changes_are_on_disk_before_the_lockfile_is_written(manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", entry(1))
    store.submitting("cat")
    await store.sync()
    store.task_recorded("cat", task_id="video_abc", status=Status.QUEUED, attempts=1,
                        submitted_at="2026-01-02T03:04:05Z")
    await store.sync()
    # Nothing compacted yet: the state is in the journal only, one line per change, and a
    # record holds only the fields that changed (the error was null already).
    assert not lock_path_for(manifest).exists()
    lines = journal(manifest).read_bytes().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[1]) == {"op": "update", "job": "cat", "set": {"status": "submitting"}}
    assert json.loads(lines[2]) == {
        "op": "update", "job": "cat", "set": {
            "attempts": 1, "status": "queued", "submitted_at": "2026-01-02T03:04:05Z",
            "task_id": "video_abc",
        },
    }
    seen = load_state(manifest).jobs["cat"]  # what another process (status, plan) sees
    assert (seen.status, seen.task_id, seen.attempts) == (Status.QUEUED, "video_abc", 1)
    store.close()
    assert journal(manifest).read_bytes() == b""
    assert read_lockfile(lock_path_for(manifest), "spring.yaml").jobs["cat"].task_id == "video_abc"


async def test_remove_is_journaled(manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", entry(1))
    store.put("dog", entry(2))
    store.remove("cat")
    await store.sync()
    assert set(load_state(manifest).jobs) == {"dog"}
    store.close()
    assert set(load_state(manifest).jobs) == {"dog"}


async def test_put_stores_a_copy_and_entries_are_immutable(manifest: Path) -> None:
    store = StateStore.open(manifest)
    mine = entry(1)
    store.put("cat", mine)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mine.task_id = "never-journaled"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        store.state.jobs["cat"].status = Status.RUNNING  # type: ignore[misc]
    mine.spec["prompt"] = "changed"  # type: ignore[index]  # the caller's own dict
    await store.sync()
    assert store.state.jobs["cat"] == entry(1)
    assert load_state(manifest).jobs["cat"] == entry(1)
    store.close()


def _torn_journal(manifest: Path, tail: bytes) -> None:
    store = StateStore.open(manifest)
    store.put("cat", entry(1))
    store.sync_now()
    store._backend.close()  # simulate a crash: the lock and files let go, no compaction
    with journal(manifest).open("ab") as f:
        f.write(tail)


@pytest.mark.parametrize(
    "tail",
    [
        b'{"op":"update","job":"cat","set":{"task_id":"vid',  # cut mid-record
        b'{"op":"update","job":"cat","set":{"task_id":"video_1"}}',  # cut before the newline
        b"\x00\x00\x00\x00",  # zero-filled block after a power loss
    ],
)
async def test_torn_last_line_is_dropped_and_then_overwritten(manifest: Path, tail: bytes) -> None:
    _torn_journal(manifest, tail)
    assert load_state(manifest).jobs["cat"] == entry(1)
    store = StateStore.open(manifest)
    assert store.state.jobs["cat"] == entry(1)
    store.task_recorded("cat", task_id="video_2", status=Status.QUEUED, attempts=1,
                        submitted_at="2026-01-02T03:04:05Z")
    await store.sync()
    # The new record starts on a line of its own: the torn bytes were cut off first.
    assert load_state(manifest).jobs["cat"].task_id == "video_2"
    store.close()
    assert load_state(manifest).jobs["cat"].task_id == "video_2"


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (b'{"op":"update","job":"cat","set":{"task_', "Unterminated string"),
        (b'{"op":"rename","job":"cat"}', "unknown op 'rename'"),
        (b'{"op":"update","job":"cat","set":{"progress":40}}', "unknown field 'progress'"),
        (b'["put"]', "expected an object with a string 'job'"),
    ],
)
def test_bad_record_before_the_last_line_is_corruption(manifest: Path, line: bytes, detail: str) -> None:
    _torn_journal(manifest, line + b"\n" + b'{"op":"remove","job":"cat"}\n')
    with pytest.raises(StateError) as info:
        load_state(manifest)
    message = str(info.value)
    assert message.startswith(f"{journal(manifest)}:2: corrupt journal record (")
    assert detail in message
    assert "move the journal away" in message
    with pytest.raises(StateError, match="corrupt journal record"):
        StateStore.open(manifest)


async def test_replaying_an_already_compacted_journal_changes_nothing(manifest: Path) -> None:
    # A crash after the new lockfile is in place but before the journal is truncated replays
    # records the lockfile already holds, including updates of jobs removed later.
    store = StateStore.open(manifest)
    store.put("cat", entry(1))
    store.task_recorded("cat", task_id="video_1", status=Status.QUEUED, attempts=1,
                        submitted_at="2026-01-02T03:04:05Z")
    store.put("dog", entry(2))
    store.awaiting_task("dog")
    store.remove("dog")
    store.put("owl", entry(3))
    store.uncertain("owl", attempts=2)
    await store.sync()
    records = journal(manifest).read_bytes()
    expected = load_state(manifest)
    store.close()
    journal(manifest).write_bytes(records)
    assert load_state(manifest) == expected
    reopened = StateStore.open(manifest)
    assert reopened.state == expected
    reopened.close()


async def test_concurrent_syncs_share_one_fsync(manifest: Path) -> None:
    store = StateStore.open(manifest)
    for i in range(64):
        store.put(f"job{i}", entry(i))
    await store.sync()
    assert store.fsyncs == 1

    async def submit(i: int) -> None:
        record_task(store, f"job{i}", f"video_{i}")
        await store.sync()
        assert load_state(manifest).jobs[f"job{i}"].task_id == f"video_{i}"

    await asyncio.gather(*(submit(i) for i in range(64)))
    # 64 writers waiting together cost one flush, two if some arrive during the first.
    assert store.fsyncs - 1 <= 2
    # One at a time, each waits for its own fsync: the counter is not just stuck.
    before = store.fsyncs
    for i in range(5):
        store.status_seen(f"job{i}", Status.RUNNING)
        await store.sync()
    assert store.fsyncs == before + 5
    await store.sync()  # nothing new: no write at all
    assert store.fsyncs == before + 5
    store.close()


async def test_a_cancelled_waiter_does_not_abort_the_shared_flush(manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", entry(1))
    first = asyncio.ensure_future(store.sync())
    second = asyncio.ensure_future(store.sync())
    await asyncio.sleep(0)
    first.cancel()
    await second
    assert load_state(manifest).jobs["cat"] == entry(1)
    store.close()


async def test_compaction_keeps_the_journal_proportional_to_the_lockfile(manifest: Path) -> None:
    store = StateStore.open(manifest, compact_min_bytes=1000)
    for i in range(200):
        store.put(f"job{i}", entry(i))
        await store.sync()
        record_task(store, f"job{i}", f"video_{i}")
        complete(store, f"job{i}")
        await store.sync()
        await store.compaction_done()  # compaction runs beside the syncs, not inside them
        journal_size = journal(manifest).stat().st_size
        lock_size = lock_path_for(manifest).stat().st_size if lock_path_for(manifest).exists() else 0
        assert journal_size <= max(1000, lock_size) + 500
    assert store.compactions >= 3
    assert load_state(manifest) == store.state
    store.close()


async def _bytes_per_event(manifest: Path, jobs: int) -> float:
    store = StateStore.open(manifest, compact_min_bytes=4096)
    for i in range(jobs):
        store.put(f"job{i:05}", entry(i))
        store.submitting(f"job{i:05}")
        await store.sync()
        record_task(store, f"job{i:05}", f"video_{i:05}")
        await store.sync()
        complete(store, f"job{i:05}")
        await store.sync()
    store.close()
    return store.bytes_written / (jobs * 4)


async def test_bytes_written_grow_linearly_with_events(tmp_path: Path) -> None:
    small, large = tmp_path / "small.yaml", tmp_path / "large.yaml"
    per_event_small = await _bytes_per_event(small, 100)
    per_event_large = await _bytes_per_event(large, 800)
    # A whole-lockfile rewrite per event would make this ratio about 8.
    assert per_event_large < 1.5 * per_event_small
    assert per_event_large < 1000


# --- kill -9 at random moments ---------------------------------------------------------------

WRITER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from octobatch.state import LockEntry, StateStore, Status

    async def main() -> None:
        store = StateStore.open(Path(sys.argv[1]), compact_min_bytes=2000)
        start = len(store.state.jobs)
        print("ready", start, flush=True)

        async def job(i: int) -> None:
            store.put(f"job{i:05}", LockEntry(spec_hash=f"h{i}", model="omni-fast"))
            store.submitting(f"job{i:05}")
            await store.sync()
            store.task_recorded(f"job{i:05}", task_id=f"video_{i}", status=Status.QUEUED,
                                attempts=1, submitted_at="2026-01-02T03:04:05Z")
            await store.sync()
            # One write per line: print() writes its parts separately when stdout is
            # unbuffered, and a kill between them would leave a bare "acked".
            sys.stdout.write(f"acked {i}\\n")
            sys.stdout.flush()

        i = start
        while True:  # four jobs at a time, so group commit and compaction both happen
            await asyncio.gather(*(job(n) for n in range(i, i + 4)))
            i += 4
            # Idle with nothing unsynced: a sync() that returned early would lose its change
            # to a kill landing here.
            await asyncio.sleep(0.003)

    asyncio.run(main())
""")


def test_kill_9_at_random_moments_loses_no_synced_change(manifest: Path) -> None:
    rng = random.Random(20261120)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    acked: set[int] = set()
    for _ in range(12):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(manifest)], stdout=subprocess.PIPE, text=True, env=env,
        )
        assert writer.stdout is not None
        first = writer.stdout.readline().split()
        assert first[0] == "ready", first
        time.sleep(rng.uniform(0.0, 0.15))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        acked |= {int(line.split()[1]) for line in out.splitlines() if line.startswith("acked")}

        read_lockfile(lock_path_for(manifest), manifest.name)  # always parseable on its own
        state = load_state(manifest)
        for i in acked:
            job = state.jobs[f"job{i:05}"]
            assert (job.status, job.task_id) == (Status.QUEUED, f"video_{i}")
        for job_id, job in state.jobs.items():  # nothing half-applied or invented
            assert job.status in (Status.SUBMITTING, Status.QUEUED)
            assert job.task_id in (None, f"video_{int(job_id[3:])}")
    assert len(acked) > 50  # the writers really got work done between kills


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from octobatch.errors import StateError
    from octobatch.state import LockEntry, StateStore, journal_path_for, lock_path_for

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    manifest = Path(sys.argv[1])
    journal = journal_path_for(lock_path_for(manifest))
    store = StateStore.open(manifest)
    store.put("small", LockEntry(spec_hash="h1", model="omni-fast"))
    store.sync_now()
    size = journal.stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, resource.RLIM_INFINITY))
    store.put("big", LockEntry(spec_hash="h2", model="omni-fast", spec={"prompt": "x" * 5000}))
    try:
        store.sync_now()
    except StateError as exc:
        print("error:", exc)
    print("size unchanged:", journal.stat().st_size == size)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    store.sync_now()  # the failed batch is still queued and goes out whole
    print("lines:", journal.read_bytes().count(b"\\n"))
    import os; os._exit(0)  # no close(): what is on disk is what the journal holds
""")


def test_a_failed_journal_write_leaves_no_partial_line_and_is_retried(manifest: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(manifest)], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == (
        f"error: {journal(manifest)}: cannot write journal: File too large; "
        "free space or fix permissions, then rerun to resume\n"
        "size unchanged: True\n"
        "lines: 2\n"
    ), result.stderr
    assert set(load_state(manifest).jobs) == {"small", "big"}


# --- any sequence of changes ------------------------------------------------------------------

JOB_IDS = st.sampled_from(["a", "b", "c", "d"])
TEXT = st.text(max_size=8)
IN_FLIGHT = st.sampled_from([Status.QUEUED, Status.RUNNING])
# Every named transition of the store, with arbitrary arguments.
TRANSITIONS = st.one_of(
    st.tuples(st.just("submitting"), st.just({})),
    st.tuples(st.just("task_recorded"), st.fixed_dictionaries({
        "task_id": TEXT, "status": IN_FLIGHT, "attempts": st.integers(0, 5), "submitted_at": TEXT,
    })),
    st.tuples(st.just("uncertain"), st.fixed_dictionaries({"attempts": st.integers(0, 5)})),
    st.tuples(st.just("back_to_pending"), st.just({})),
    st.tuples(st.just("status_seen"), st.fixed_dictionaries({"status": IN_FLIGHT})),
    st.tuples(st.just("awaiting_task"), st.just({})),
    st.tuples(st.just("completed"), st.fixed_dictionaries({
        "video_url": TEXT, "output": TEXT, "sha256": TEXT, "bytes": st.integers(0, 10**9),
        "completed_at": TEXT,
    })),
    st.tuples(st.just("failed"), st.fixed_dictionaries({"code": TEXT, "message": st.text(max_size=20)})),
    st.tuples(st.just("submitting"), st.fixed_dictionaries({"cost": st.floats(0, 10)})),
    st.tuples(st.just("not_created"), st.fixed_dictionaries({"cost": st.floats(0, 10)})),
    st.tuples(st.just("reviewed"), st.fixed_dictionaries({
        "decision": st.sampled_from(["approved", "rejected", None]), "take": st.none(),
        "at": TEXT,
    })),
)
OPS = st.lists(st.one_of(
    st.tuples(st.just("put"), JOB_IDS, st.text(max_size=10)),
    st.tuples(st.just("transition"), JOB_IDS, TRANSITIONS),
    st.tuples(st.just("remove"), JOB_IDS, st.none()),
    st.tuples(st.just("sync"), st.none(), st.none()),  # compacts when the journal outgrew it
    st.tuples(st.just("compact"), st.none(), st.none()),
), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_sequence_of_changes_replays_to_the_same_state(tmp_path: Path, ops: list[Any]) -> None:
    manifest = tmp_path / f"m{uuid.uuid4().hex}.yaml"
    store = StateStore.open(manifest, compact_min_bytes=300)
    for op, job_id, arg in ops:
        if op == "put":
            store.put(job_id, LockEntry(spec_hash=arg, model="omni-fast", spec={"prompt": arg}))
        elif op == "transition" and job_id in store.state.jobs:
            name, kwargs = arg
            if name == "completed" and store.state.jobs[job_id].task_id is None:
                with pytest.raises(ValueError, match="before a task id was recorded"):
                    store.completed(job_id, **kwargs)
            else:
                getattr(store, name)(job_id, **kwargs)
        elif op == "remove" and job_id in store.state.jobs:
            store.remove(job_id)
        elif op == "sync":
            asyncio.run(store.sync())
        elif op == "compact":
            store.compact()
    store.sync_now()
    assert load_state(manifest) == store.state  # lockfile + journal, as a crash would leave them
    leftover = journal(manifest).read_bytes()
    expected = copy.deepcopy(store.state)
    store.close()
    assert read_lockfile(lock_path_for(manifest), manifest.name) == expected
    # Replaying a journal the lockfile already holds (a crash right after compaction).
    journal(manifest).write_bytes(leftover)
    assert load_state(manifest) == expected


async def test_sync_soon_starts_the_write_without_waiting_for_it(manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", entry(1))
    store.sync_soon()  # what a submission does before its POST's task starts
    for _ in range(1000):  # no await on the store: the write goes on by itself
        if store.fsyncs:
            break
        await asyncio.sleep(0.005)
    assert load_state(manifest).jobs["cat"] == entry(1) and store.fsyncs == 1
    await store.sync()  # already durable: no second write
    assert store.fsyncs == 1
    store.close()


async def test_a_cancelled_sync_stops_neither_the_write_nor_the_others_waiting(
        manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", entry(1))
    cancelled = asyncio.ensure_future(store.sync())
    other = asyncio.ensure_future(store.sync())
    announced = store.durable()  # what a submission hands its job: a future of its own
    await asyncio.sleep(0)  # both syncs wait now
    cancelled.cancel()
    await asyncio.wait_for(other, 10)
    assert announced.done() and announced.exception() is None
    assert load_state(manifest).jobs["cat"] == entry(1)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    store.close()


async def test_changes_made_during_a_write_are_written_by_the_next_one(manifest: Path) -> None:
    store = StateStore.open(manifest)
    store.put("cat", entry(1))
    first = store.durable()  # starts a write of "cat"
    store.put("dog", entry(2))  # made while that write may be under way
    second = store.durable()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert set(load_state(manifest).jobs) == {"cat", "dog"}
    assert (await store.durable()) is None and store.durable().done()  # nothing left to write
    store.close()
